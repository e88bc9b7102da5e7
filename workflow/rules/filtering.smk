# Rules of the filtering part (see DESIGN.md).
