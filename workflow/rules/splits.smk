# Rules of the splits part (see DESIGN.md).
