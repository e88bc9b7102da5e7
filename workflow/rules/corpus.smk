# Rules of the corpus part (see DESIGN.md).
