# Rules of the clustering part (see DESIGN.md).
