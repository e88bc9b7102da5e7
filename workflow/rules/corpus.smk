# Rules of the corpus part (see docs/architecture.md): the demo corpus export, ingest per shard, its
# report.


rule export_sotu:
    output:
        SOTU_JSONL,
    log:
        "logs/export_sotu/export_sotu.log",
    benchmark:
        "benchmarks/export_sotu/export_sotu.tsv"
    localrule: True
    conda:
        "../../envs/locallm.yaml"
    script:
        "../scripts/export_sotu.py"


rule ingest:
    input:
        files=ingest_files,
    output:
        kept="results/corpus/{shard}.parquet",
        rejects="results/corpus/rejects/{shard}.parquet",
        counts="results/corpus/counts/{shard}.json",
    log:
        "logs/ingest/{shard}.log",
    benchmark:
        "benchmarks/ingest/{shard}.tsv"
    conda:
        "../../envs/locallm.yaml"
    threads: 1
    resources:
        mem_mb=DATA_MEM_MB["ingest"],
    params:
        settings=config["corpus"],
        whole_files=PLAN.files_sharded_whole,
    script:
        "../scripts/ingest.py"


rule ingest_report:
    input:
        kept=expand("results/corpus/{shard}.parquet", shard=SHARDS),
        rejects=expand("results/corpus/rejects/{shard}.parquet", shard=SHARDS),
        counts=expand("results/corpus/counts/{shard}.json", shard=SHARDS),
    output:
        report(
            "results/corpus/ingest_report.tsv",
            caption="../report/ingest_report.rst",
            category="Corpus",
            subcategory="Ingest",
        ),
    log:
        "logs/ingest_report/ingest_report.log",
    benchmark:
        "benchmarks/ingest_report/ingest_report.tsv"
    localrule: True
    conda:
        "../../envs/locallm.yaml"
    resources:
        mem_mb=DATA_MEM_MB["ingest_report"],
    params:
        shards=SHARDS,
    script:
        "../scripts/ingest_report.py"
