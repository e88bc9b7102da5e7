# Rules of the splits part (see docs/architecture.md): whole groups to train/validation/test by a
# seeded hash, then a leakage check (groups and near duplicates straddling train and test).


rule split:
    input:
        filtered=expand("results/filtered/{shard}.parquet", shard=SHARDS),
        duplicates="results/dedup/duplicates.parquet",
    output:
        train="results/splits/train.parquet",
        validation="results/splits/validation.parquet",
        test="results/splits/test.parquet",
        rejects="results/splits/rejects.parquet",
        report=report(
            "results/splits/split_report.tsv",
            caption="../report/split_report.rst",
            category="Corpus",
            subcategory="Splits",
        ),
    log:
        "logs/split/split.log",
    benchmark:
        "benchmarks/split/split.tsv"
    conda:
        "../../envs/locallm.yaml"
    resources:
        mem_mb=DATA_MEM_MB["split"],
    params:
        settings=config["split"],
        # Only the task keys the split reads: editing a prompt must not re-split (and re-train).
        task={
            key: config["task"][key]
            for key in ["label_column", "labels", "label_normalize"]
        },
        seed=config["seed"],
    script:
        "../scripts/split.py"
