"""Data-half jobs ask memory that follows the shard (or bucket) size, not the corpus size."""

from locallm.config import with_defaults
from locallm.data.job_memory import FIXED_MB, data_mem_mb, data_mem_table


def test_a_shard_job_asks_the_same_for_ten_times_the_corpus_in_ten_times_the_shards():
    for rule in ["ingest", "minhash", "cluster_assign", "filter", "dedup_bucket"]:
        assert data_mem_mb(rule, 1_000, shards=8, buckets=8) == data_mem_mb(
            rule, 10_000, shards=80, buckets=80
        )
        assert data_mem_mb(rule, 10_000, shards=8, buckets=8) > data_mem_mb(rule, 1_000, 8, 8)


def test_split_grows_only_by_its_per_row_fields_of_the_whole_corpus():
    small, large = data_mem_mb("split", 1_000, 8, 8), data_mem_mb("split", 10_000, 80, 80)
    assert small < large <= small + 0.5 * 9_000 + 100


def test_bucket_jobs_follow_the_number_of_buckets():
    assert data_mem_mb("dedup_bucket", 10_000, shards=8, buckets=80) == data_mem_mb(
        "dedup_bucket", 1_000, shards=8, buckets=8
    )


def test_the_table_covers_every_data_rule_and_counts_only_existing_files(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b"x" * 5_000_000)
    config = with_defaults({"corpus": {"shards": 1}})
    table = data_mem_table(config, [tmp_path / "a.jsonl", tmp_path / "missing.jsonl"])
    assert set(table) == set(FIXED_MB)
    assert table["ingest"] == data_mem_mb("ingest", 5.0, 1, 1)
    assert all(value % 100 == 0 and value >= FIXED_MB[rule] for rule, value in table.items())
