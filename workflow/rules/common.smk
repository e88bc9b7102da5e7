# Config validation, wildcard constraints and the names the rule files share: PLAN (locallm.plan,
# what the DAG needs, worked out once per run without torch) and PATHS (locallm.paths). Rules call
# PLAN's methods directly as input, params and resource functions.

import functools
import mimetypes
import sys

from snakemake.utils import validate

from locallm.installed import installed_mismatch

# Before anything else: the library the jobs import must be this workflow's.
if problem := installed_mismatch(workflow.basedir):
    raise WorkflowError(problem)

from locallm.model.sources import BUILTIN_WHEELS, WHEEL_CACHE, builtin_name
from locallm.config import canonical, run_name, with_defaults, yaml_problems
from locallm.config_checks import config_problems
from locallm.paths import BUILTIN_GGUF, SOTU_JSONL
from locallm.plan import SPLITS, TRAINED_STAGES, Plan
from locallm.model.fetching import go_offline
from locallm.model.preflight import format_preflight, local_gpu_count, preflight_table

# Snakemake's YAML reading keeps the last of two equal keys and reads yes/no/on/off as booleans;
# the config files are read again, strictly, so that neither passes unremarked.
YAML_PROBLEMS = [p for path in workflow.configfiles for p in yaml_problems(path)]
if YAML_PROBLEMS:
    raise WorkflowError("invalid config file:\n  " + "\n  ".join(YAML_PROBLEMS))
# One line naming the key; snakemake.utils.validate would print the whole schema with it.
try:
    with_defaults(config)
except ValueError as error:
    raise WorkflowError(str(error)) from None
validate(config, "../schemas/config.schema.yaml")
# Outputs go to results/NAME/ (locallm.paths); NAME defaults to the config file's stem and is
# written into the resolved config, so that a rerun from results/NAME/report/config.yaml keeps it.
try:
    config["name"] = run_name(config, workflow.configfiles)
except ValueError as error:
    raise WorkflowError(str(error)) from None
# Sorted keys at every level, so that params (compared by repr) change only when values change.
_sorted_config = canonical(config)
config.clear()
config.update(_sorted_config)
# Problems that need more than the schema (prompt fields, split fractions, files that match
# nothing, preference settings) stop the run here, before any job starts.
CONFIG_PROBLEMS = config_problems(config)
if CONFIG_PROBLEMS:
    raise WorkflowError("invalid config:\n  " + "\n  ".join(CONFIG_PROBLEMS))

try:
    PLAN = Plan(config, cores=workflow.resource_settings.cores)
except (OSError, ValueError) as error:
    raise WorkflowError(str(error)) from None
# hpc.fit_error: a variant whose training cannot fit the GPUs stops the run here, before any job.
FIT_PROBLEMS = PLAN.fit_problems() if config["hpc"]["fit_error"] else []
if FIT_PROBLEMS:
    raise WorkflowError(
        "pre-flight (hpc.fit_error is on):\n  " + "\n  ".join(FIT_PROBLEMS)
    )

# Cluster jobs re-read this file in their own Snakemake process (exec mode remote or subprocess),
# which then runs the job's script; setting the variables here makes every cluster job use the
# local Hugging Face cache only, while fetch_base (a localrule, main process) still downloads.
if not workflow.is_main_process and config["hpc"]["offline"]:
    go_offline()
# Printed by every run and dry-run of the main Snakemake process (not inside cluster jobs), before
# any job is submitted; a model not fetched yet is listed as such.
if workflow.is_main_process:
    print(
        format_preflight(
            preflight_table(config, PLAN.variant_lengths),
            gpus_here=local_gpu_count() if workflow.local_exec else None,
        ),
        file=sys.stderr,
    )

# Every output's path (locallm.paths); rules name them as PATHS.<name>.
PATHS = PLAN.paths
# export.use: decision exports what the evaluate checkpoint's metrics decide (once it has run).
CHOSEN_EXPORT = functools.partial(PLAN.chosen_export, checkpoints)
SHARDS = PLAN.shards
INFER_SHARDS = PLAN.infer_shards
VARIANTS = list(PLAN.variants)
STAGES = PLAN.stages
TOKENIZATIONS = PLAN.tokenizations
BUILTIN_NAMES = [builtin_name(base) for base in BUILTIN_WHEELS]
# Files of a trained stage's folder shown by `snakemake --report` (patterns need a wildcard).
STAGE_REPORT_FILES = [
    "{name,loss}.{ext,png}",
    "{name,train_log}.{ext,tsv}",
    "{name,run_info}.{ext,json}",
    "{name,README}.{ext,md}",
]
# `snakemake --report` embeds each result with its MIME type; Python's table lacks Parquet, which
# would otherwise be shown as text.
mimetypes.add_type("application/vnd.apache.parquet", ".parquet")


wildcard_constraints:
    shard=r"\d{3}",
    bucket=r"\d{3}",
    split="|".join(SPLITS),
    variant="|".join(VARIANTS),
    tokenization="|".join(TOKENIZATIONS),
    stage="base|fewshot|sft|dpo",
