# Rules of the splits part (see docs/architecture.md): whole groups to train/validation/test by a
# seeded hash, then a leakage check (groups and near duplicates straddling train and test).


rule split:
    input:
        filtered=expand(PATHS.filtered, shard=SHARDS),
        duplicates=PATHS.duplicates,
    output:
        train=PATHS.split.format(split="train"),
        validation=PATHS.split.format(split="validation"),
        test=PATHS.split.format(split="test"),
        rejects=PATHS.split_rejects,
        report=report(
            PATHS.split_report,
            caption="../report/split_report.rst",
            category="Corpus",
            subcategory="Splits",
        ),
    log:
        PATHS.log("split/split"),
    benchmark:
        PATHS.benchmark("split/split")
    conda:
        "../../envs/locallm.yaml"
    resources:
        **PLAN.resources("split"),
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
