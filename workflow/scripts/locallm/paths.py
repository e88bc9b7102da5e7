"""Every file and folder the workflow writes, named once: the rules and `Plan` both read them here.

`Paths` holds each output as a Snakemake pattern (wildcards in braces) under one results root, its
logs and its benchmarks; `Plan.paths` is the config's (`run_paths(config name)`: results/NAME/,
logs/NAME/, benchmarks/NAME/, so that two configs never write the same file). A new rule adds its
outputs here, in the pipeline's order, and names them in its rule as `PATHS.<name>`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

# Shared by every config: the demo corpus and the built-in GGUF files depend on no setting.
SOTU_JSONL = "resources/sotu/sotu.jsonl"
BUILTIN_GGUF = "resources/builtin/{builtin}.gguf"


@dataclass(frozen=True)
class Paths:
    """Output patterns, relative to the results root until `Paths.under(root)` prefixes them."""

    # The folders of the outputs, the logs and the benchmarks (set by under()).
    root: str = "."
    logs: str = "logs"
    benchmarks: str = "benchmarks"
    # corpus (ingest, ingest_report)
    corpus: str = "corpus/{shard}.parquet"
    corpus_rejects: str = "corpus/rejects/{shard}.parquet"
    corpus_counts: str = "corpus/counts/{shard}.json"
    ingest_report: str = "corpus/ingest_report.tsv"
    # dedup (minhash, dedup_bucket, dedup)
    signatures: str = "dedup/signatures/{shard}.parquet"
    bands: str = "dedup/bands/{shard}.parquet"
    dedup_pairs: str = "dedup/pairs/{bucket}.parquet"
    duplicates: str = "dedup/duplicates.parquet"
    # clusters (cluster_fit, cluster_assign, cluster_summary)
    cluster_model: str = "clusters/model.pkl"
    cluster_assignments: str = "clusters/assignments/{shard}.parquet"
    cluster_terms: str = "clusters/partial/terms/{shard}.parquet"
    cluster_bins: str = "clusters/partial/bins/{shard}.parquet"
    cluster_examples: str = "clusters/partial/examples/{shard}.parquet"
    cluster_summary: str = "clusters/summary.tsv"
    cluster_map: str = "clusters/map.png"
    cluster_shares: str = "clusters/shares.tsv"
    cluster_shares_png: str = "clusters/shares.png"
    # filtering (filter, filter_report)
    filtered: str = "filtered/{shard}.parquet"
    filter_rejects: str = "filtered/rejects/{shard}.parquet"
    filter_report: str = "filtered/filter_report.tsv"
    # splits (split)
    split: str = "splits/{split}.parquet"
    split_rejects: str = "splits/rejects.parquet"
    split_report: str = "splits/split_report.tsv"
    # task tables (build_sft, build_preferences, tokenize)
    sft_data: str = "sft_data/{split}.parquet"
    preferences: str = "preferences/{split}.parquet"
    preference_rejects: str = "preferences/rejects/{split}.parquet"
    tokenized_data: str = "tokenized/{tokenization}/data"
    tokenized_lengths: str = "tokenized/{tokenization}/lengths.tsv"
    tokenized_histogram: str = "tokenized/{tokenization}/lengths.png"
    # models (bootstrap_base, convert_gguf, fetch_base, sft, dpo, merge)
    bootstrapped_base: str = "models/base"
    converted: str = "models/converted/{gguf}"
    fetched: str = "models/fetched/{variant}.json"
    preflight: str = "preflight.tsv"
    sft_model: str = "models/{variant}/sft"
    dpo_model: str = "models/{variant}/dpo"
    stage_model: str = "models/{variant}/{stage}"
    checkpoints: str = "checkpoints/{variant}/{stage}"
    merged: str = "merged/{variant}/{stage}"
    # inference (infer, gather_predictions)
    prediction_shard: str = "predictions/{variant}/{stage}/{shard}.parquet"
    predictions: str = "predictions/{variant}/{stage}.parquet"
    # evaluation (perplexity, evaluate)
    perplexity: str = "eval/perplexity/{variant}/{stage}.parquet"
    metrics: str = "eval/metrics.tsv"
    confusion: str = "eval/confusion.tsv"
    reliability: str = "eval/reliability.tsv"
    comparison: str = "eval/comparison.png"
    confusion_png: str = "eval/confusion.png"
    calibration: str = "eval/calibration.png"
    decision: str = "eval/decision.md"
    # annotation (choose_stage, annotate_input, annotate_shard, gather_annotations,
    # estimate_shares, annotation_card, annotate_csv)
    annotate_choice: str = "annotate/choice.json"
    annotate_input: str = "annotate/input.parquet"
    annotate_rejects: str = "annotate/rejects.parquet"
    annotate_counts: str = "annotate/input_counts.tsv"
    annotate_shard: str = "annotate/shards/{shard}.parquet"
    annotate_partial: str = "annotate/partial/{shard}"
    annotated_passages: str = "annotate/passages.parquet"
    annotated_documents: str = "annotate/documents.parquet"
    annotate_accounting: str = "annotate/accounting.tsv"
    estimates: str = "annotate/estimates.tsv"
    estimates_png: str = "annotate/estimates.png"
    annotation_card: str = "annotate/card.md"
    annotated_passages_csv: str = "annotate/passages.csv"
    annotated_documents_csv: str = "annotate/documents.csv"
    # export (export_gguf, export_chosen)
    export: str = "export/{variant}/{stage}"
    export_chosen: str = "export/chosen.json"
    # report (report, archive, archive_with_data)
    reforms: str = "report/REFORMS.md"
    data_card: str = "report/data_card.md"
    environment: str = "report/environment.json"
    checksums: str = "report/checksums.tsv"
    config: str = "report/config.yaml"
    model_card: str = "report/model_cards/{variant}/{stage}.md"
    archive: str = "archive/locallm-replication.tar.gz"
    archive_with_data: str = "archive/locallm-replication-with-data.tar.gz"

    def under(self, root: str, logs: str = "logs", benchmarks: str = "benchmarks") -> Paths:
        """These patterns with every output under `root`, logs under `logs`, benchmarks under
        `benchmarks`."""
        folders = {"root": root, "logs": logs, "benchmarks": benchmarks}
        rooted = {
            f.name: f"{root}/{getattr(self, f.name)}" for f in fields(self) if f.name not in folders
        }
        return replace(self, **rooted, **folders)

    def log(self, job: str) -> str:
        """A rule's log: `log("ingest/{shard}")` -> `logs/ingest/{shard}.log`."""
        return f"{self.logs}/{job}.log"

    def benchmark(self, job: str) -> str:
        """A rule's benchmark table: `benchmark("ingest/{shard}")` -> `.../ingest/{shard}.tsv`."""
        return f"{self.benchmarks}/{job}.tsv"


def run_paths(name: str) -> Paths:
    """The paths of the run `name` (config `name`): results/NAME/, logs/NAME/, benchmarks/NAME/."""
    return Paths().under(f"results/{name}", logs=f"logs/{name}", benchmarks=f"benchmarks/{name}")
