"""Quality filters: one class per rule, applied per shard, each removal kept with its reason."""
