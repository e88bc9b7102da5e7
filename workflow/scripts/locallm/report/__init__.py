"""The replication package: REFORMS, data and model cards, environment, checksums, archive."""
