# Rules of batched inference: infer per variant x stage x shard, gather.
