"""The data half before filtering: raw files read and checked, documents sharded, exact and near
duplicates found, topic clusters fitted and assigned."""
