# Rules of the dedup part (see DESIGN.md).
