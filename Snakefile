# locallm: raw corpus -> aligned local language model, its predictions and a citable report.
# Rules live in workflow/rules/, their scripts in workflow/scripts/, the library in
# workflow/scripts/locallm/. Options: workflow/schemas/config.schema.yaml (explained in config/README.md).

from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


# The demo's config, unless --configfile names another: Snakemake would otherwise merge that file
# into this one, and the demo's variants would be trained beside the user's.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/corpus.smk"
include: "workflow/rules/dedup.smk"
include: "workflow/rules/clustering.smk"
include: "workflow/rules/filtering.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/inference.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/annotate.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/hpc.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        PLAN.targets(),
