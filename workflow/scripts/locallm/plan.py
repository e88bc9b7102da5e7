"""What the DAG needs from a validated config, worked out once per Snakemake run, without torch.

`Plan(config, cores)` holds the shards and their raw files, each variant's settings as one typed
dataclass per stage (locallm.settings; `params()` gives the dict a rule passes), every stage's
inputs and targets, every output's path (`paths`, locallm.paths), and each rule's threads and
resources (estimated once, then cached). `common.smk` builds one Plan, PLAN; rules call its methods
that take `wildcards` directly as input, params and resource functions (one hop from rule to plan).

Only torch-free modules are imported here: the Snakemake controller (a login node, a dry-run) needs
neither torch, transformers nor bitsandbytes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any

from locallm.config import (
    DEFAULT_NAME,
    tokenization_id,
    tokenization_settings,
    variant_settings,
)
from locallm.data.job_memory import data_mem_table
from locallm.data.sources import corpus_paths, files_by_shard, shards_by_file
from locallm.export.choice import architecture_problem, export_choice
from locallm.model.facts import TINY
from locallm.model.loading import resolve_base_path
from locallm.model.preflight import job_resources
from locallm.model.sources import gguf_name, gguf_sources, is_gguf_base
from locallm.paths import SOTU_JSONL, Paths, run_paths
from locallm.scheduling import job_threads, training_priority
from locallm.settings import (
    SPLITS,
    DPOSettings,
    InferenceSettings,
    LoadingSettings,
    PerplexitySettings,
    SFTSettings,
)

# Job sizing keys of `training` and `inference`: not in params, so changing them re-runs nothing.
JOB_KEYS = ("threads", "mem_mb", "runtime")
# Stages that training writes, and so the stages that load an adapter (base and fewshot ask the
# base model itself).
TRAINED_STAGES = ("sft", "dpo")
# Jobs whose size does not follow the config: single-threaded shard jobs, and the corpus-wide
# jobs that hold every shard's table in memory.
FIXED_RESOURCES: dict[str, dict[str, int]] = {
    "ingest": {"threads": 1},
    "minhash": {"threads": 1},
    "dedup_bucket": {"threads": 1},
    "dedup": {"threads": 1},
    "filter": {"threads": 1},
    "evaluate": {"mem_mb": 2000},
}
# Per-variant jobs: what Plan.variant_job gives each (merge keeps Snakemake's one thread).
TRAINING_JOB = ("threads", "mem_mb", "runtime", "gpu", "gpu_mem_mb")
VARIANT_RULES = {
    "sft": TRAINING_JOB,
    "dpo": TRAINING_JOB,
    "merge": ("mem_mb",),
    "infer": TRAINING_JOB,
    "perplexity": TRAINING_JOB,
    "export_gguf": TRAINING_JOB,
}


@dataclass(frozen=True)
class VariantPlan:
    """One variant's settings per stage and where its base comes from."""

    name: str
    dpo: DPOSettings
    tokenization: str  # folder under results/tokenized/, shared by variants that tokenize alike
    threads: int | str  # training.threads as configured (`auto` resolved by Plan)
    runtime: int
    paths: Paths

    @property
    def sft(self) -> SFTSettings:
        return SFTSettings.pick(asdict(self.dpo))

    @property
    def loading(self) -> LoadingSettings:
        return LoadingSettings.pick(asdict(self.dpo))

    @property
    def base_path(self) -> str:
        """Where the base is loaded from: the bootstrapped folder, a local folder or a Hub id."""
        return resolve_base_path(asdict(self.dpo), self.base_input.get("base"))

    @property
    def base_input(self) -> dict[str, str]:
        """The base the workflow builds, as an input: bootstrapped (builtin:tiny) or converted
        (GGUF); nothing for a local folder or a Hub id."""
        if self.dpo.base == TINY:
            return {"base": self.paths.bootstrapped_base}
        if is_gguf_base(self.dpo.base):
            return {"base": self.paths.converted.format(gguf=gguf_name(self.dpo.base))}
        return {}


class Plan:
    """Everything the DAG asks of the config, computed once (see the module docstring)."""

    def __init__(self, config: dict[str, Any], cores: int | None = None):
        self.config = config
        # Every output's path (locallm.paths), under results/NAME/ (config `name`, resolved from
        # the config file's stem by common.smk).
        self.paths = run_paths(config["name"] or DEFAULT_NAME)
        # Cores given to Snakemake (--cores); None on a cluster.
        self.cores = cores
        self.shards = [f"{i:03d}" for i in range(config["corpus"]["shards"])]
        self.infer_shards = [f"{i:03d}" for i in range(config["inference"]["shards"])]
        self.annotate_shards = [f"{i:03d}" for i in range(config["annotate"]["shards"])]
        self.stages = list(config["inference"]["stages"])
        self.variants = {name: self._variant(name) for name in config["variants"]}
        # One tokenize job per distinct tokenization, run with the settings of its first variant.
        self.tokenizations: dict[str, str] = {}
        for variant in self.variants.values():
            self.tokenizations.setdefault(variant.tokenization, variant.name)
        # {converted folder name: GGUF file} of the variants' GGUF bases (rule convert_gguf);
        # raises ValueError when two different files would share a folder.
        self.gguf_sources = gguf_sources([v.dpo.base for v in self.variants.values()])
        self._resources: dict[tuple[str, str], dict[str, int]] = {}

    def _variant(self, name: str) -> VariantPlan:
        settings = {
            **variant_settings(self.config, name),
            "cache_dir": self.config["model"]["cache_dir"],
        }
        return VariantPlan(
            name=name,
            dpo=DPOSettings.pick(settings),
            tokenization=tokenization_id(self.config, name),
            threads=settings["threads"],
            runtime=settings["runtime"],
            paths=self.paths,
        )

    # --- corpus -------------------------------------------------------------------------------

    @functools.cached_property
    def corpus_files(self) -> list[str]:
        """The raw files to ingest: the exported demo corpus, or the user's globs (sorted)."""
        if self.config["corpus"]["source"] == "sotu":
            return [SOTU_JSONL]
        return corpus_paths(self.config["corpus"]["paths"])

    @functools.cached_property
    def data_memory(self) -> dict[str, int]:
        """mem_mb of every data-half rule, from the corpus files' size (locallm.data.job_memory)."""
        return data_mem_table(self.config, self.corpus_files)

    @property
    def dedup_buckets(self) -> list[str]:
        """The dedup_bucket jobs' names; dedup.buckets null gives one bucket per shard, so a
        bucket job's memory follows shard size."""
        return [f"{b:03d}" for b in range(self.config["dedup"]["buckets"] or len(self.shards))]

    @property
    def minhash_settings(self) -> dict[str, Any]:
        """dedup's settings without `buckets`: changing the split of the band keys must not
        re-hash the corpus."""
        return {key: value for key, value in self.config["dedup"].items() if key != "buckets"}

    @functools.cached_property
    def files_of_shards(self) -> dict[int, list[str]]:
        """Every shard's raw files (hashed once per run, not once per ingest job)."""
        return files_by_shard(self.corpus_files, self.config["corpus"]["shards"])

    @property
    def files_sharded_whole(self) -> bool:
        """True when each ingest shard reads whole files (at least as many files as shards)."""
        return shards_by_file(len(self.corpus_files), self.config["corpus"]["shards"])

    def ingest_files(self, wildcards: Any) -> list[str]:
        """The raw files one ingest job reads: its own, or all of them when records are strided."""
        return list(self.files_of_shards[int(wildcards.shard)])

    def cap_assignments(self) -> list[str]:
        """Every shard's cluster assignments when a per-cluster or per-group cap is set (caps
        count corpus-wide), else nothing."""
        caps = self.config["filter"]
        if caps["cluster_cap"] is None and caps["group_cap"] is None:
            return []
        return [self.paths.cluster_assignments.format(shard=shard) for shard in self.shards]

    # --- threads and resources ----------------------------------------------------------------
    # The one route from the config to a rule's `threads:` and `resources:` (docs/architecture.md,
    # "a rule's resources"): rules call `PLAN.threads(rule)` and `**PLAN.resources(rule)`.

    def threads(self, rule: str) -> int | Callable[[Any], int]:
        """`threads:` of `rule`: a number, or for a per-variant rule a function of the wildcards."""
        if "threads" in VARIANT_RULES.get(rule, ()):
            return functools.partial(self._variant_job_value, rule, "threads")
        return self._job(rule).get("threads", 1)

    def resources(self, rule: str) -> dict[str, int | Callable[[Any], int]]:
        """`resources:` of `rule` (threads apart): numbers, or for a per-variant rule functions
        of the wildcards (Snakemake calls them with the job's wildcards)."""
        if rule in VARIANT_RULES:
            return {
                key: functools.partial(self._variant_job_value, rule, key)
                for key in VARIANT_RULES[rule]
                if key != "threads"
            }
        return {key: value for key, value in self._job(rule).items() if key != "threads"}

    def _job(self, rule: str) -> dict[str, int]:
        """Threads and resources of a rule whose jobs do not depend on a variant."""
        if rule in self.data_memory:
            # Data-half jobs ask memory that follows the shard (or bucket), not the corpus.
            return {**FIXED_RESOURCES.get(rule, {}), "mem_mb": self.data_memory[rule]}
        if rule in FIXED_RESOURCES:
            return FIXED_RESOURCES[rule]
        if rule == "annotate_shard":
            # Inference over the annotate shards, which share the cores among themselves.
            inference = self.config["inference"]
            return {
                "threads": self._share_cores(inference["threads"], len(self.annotate_shards)),
                "mem_mb": inference["mem_mb"],
                "runtime": inference["runtime"],
            }
        if rule in ("bootstrap_base", "convert_gguf"):
            # Each runs alone before training (one base; one conversion per GGUF file).
            training = self.config["training"]
            return {
                "threads": self._share_cores(training["threads"], 1),
                "mem_mb": training["mem_mb"],
                "runtime": training["runtime"],
            }
        return {}

    def _variant_job_value(self, rule: str, key: str, wildcards: Any) -> int:
        return self.variant_job(rule, wildcards.variant)[key]

    def variant_job(self, rule: str, variant: str) -> dict[str, int]:
        """Threads and resources of a per-variant job (keys: VARIANT_RULES[rule])."""
        if rule in ("sft", "dpo", "merge"):
            job = self.training_resources(variant)
        else:  # infer, perplexity, export_gguf: one model in inference
            inference = self.config["inference"]
            gpu = self.gpu_resources(variant, "infer")
            job = {
                "threads": self.inference_threads,
                "mem_mb": inference["mem_mb"],
                "runtime": inference["runtime"],
                "gpu": gpu["gpu"],
                "gpu_mem_mb": gpu.get("gpu_mem_mb", 0),
            }
        return {key: job[key] for key in VARIANT_RULES[rule]}

    def _share_cores(self, setting: int | str, jobs_at_once: int) -> int:
        """Threads of a job (`auto` shares --cores among `jobs_at_once`: locallm.scheduling)."""
        return job_threads(setting, self.cores, jobs_at_once)

    @property
    def inference_threads(self) -> int:
        """Threads of an infer or perplexity job: `auto` shares the cores by variant x stage."""
        return self._share_cores(
            self.config["inference"]["threads"], len(self.variants) * len(self.stages)
        )

    def gpu_resources(self, variant: str, stage: str = "train") -> dict[str, int]:
        """`gpu`, `mem_mb` and maybe `gpu_mem_mb` of a variant's training (`train`) or inference
        (`infer`) job, estimated once from the model's shape (locallm.model.memory)."""
        key = (variant, stage)
        if key not in self._resources:
            self._resources[key] = job_resources(self.config, variant, stage=stage)
        return self._resources[key]

    def training_resources(self, variant: str) -> dict[str, int]:
        """Snakemake threads, runtime, GPUs, host and GPU memory (MB) of a training job."""
        plan = self.variants[variant]
        return {
            # With threads: auto, every variant's job can run beside the others.
            "threads": self._share_cores(plan.threads, len(self.variants)),
            "runtime": plan.runtime,
            "gpu_mem_mb": 0,
            **self.gpu_resources(variant, "train"),
        }

    def fit_problems(self) -> list[str]:
        """Variants whose training estimate exceeds hpc.gpu_memory_gb or hpc.gpus_per_node (a base
        whose shape is not known yet is not a misfit)."""
        hpc = self.config["hpc"]
        problems = []
        for name, variant in self.variants.items():
            resources = self.gpu_resources(name, "train")
            where = f"variant {name} ({variant.dpo.base}, {variant.dpo.method})"
            if resources.get("gpu_mem_mb", 0) > hpc["gpu_memory_gb"] * 1000:
                problems.append(
                    f"{where}: estimated {resources['gpu_mem_mb'] / 1000:.1f} GB per GPU exceeds "
                    f"hpc.gpu_memory_gb {hpc['gpu_memory_gb']}"
                )
            if resources["gpu"] > hpc["gpus_per_node"]:
                problems.append(
                    f"{where}: num_processes {resources['gpu']} > hpc.gpus_per_node "
                    f"{hpc['gpus_per_node']}"
                )
        return problems

    # --- stage inputs -------------------------------------------------------------------------

    # Rules call the methods that take `wildcards` (Snakemake input and params functions).

    def variant(self, wildcards: Any) -> VariantPlan:
        return self.variants[wildcards.variant]

    def priority(self, wildcards: Any) -> int:
        """Jobs of the longest variant's training chain start first (locallm.scheduling)."""
        return training_priority(self.config, dict(wildcards.items()))

    def sft_params(self, wildcards: Any) -> dict[str, Any]:
        return self.variant(wildcards).sft.params()

    def training_params(self, wildcards: Any) -> dict[str, Any]:
        """SFT's settings and the dpo_ keys (rules dpo, merge, fetch_base)."""
        return self.variant(wildcards).dpo.params()

    def loading_params(self, wildcards: Any) -> dict[str, Any]:
        return self.variant(wildcards).loading.params()

    def base_path(self, wildcards: Any) -> str:
        return self.variant(wildcards).base_path

    def checkpoints(self, wildcards: Any, output: Any) -> str:
        """Checkpoints of a training stage, outside its output so they survive a failed job."""
        stage = PurePosixPath(output[0]).name
        return self.paths.checkpoints.format(variant=wildcards.variant, stage=stage)

    def tokenize_params(self, wildcards: Any) -> dict[str, Any]:
        """What tokenized data depends on: tokenizer identity, chat template, length, packing."""
        return tokenization_settings(self.config, self.tokenizations[wildcards.tokenization])

    def tokenizing_variant(self, tokenization: str) -> VariantPlan:
        return self.variants[self.tokenizations[tokenization]]

    def tokenize_base_path(self, wildcards: Any) -> str:
        return self.tokenizing_variant(wildcards.tokenization).base_path

    def tokenize_input(self, wildcards: Any) -> dict[str, str]:
        return {
            "train": self.paths.sft_data.format(split="train"),
            "validation": self.paths.sft_data.format(split="validation"),
            **self.tokenizing_variant(wildcards.tokenization).base_input,
        }

    def sft_input(self, wildcards: Any) -> dict[str, str]:
        variant = self.variant(wildcards)
        data = self.paths.tokenized_data.format(tokenization=variant.tokenization)
        return {"data": data, **variant.base_input}

    def dpo_input(self, wildcards: Any) -> dict[str, str]:
        return {
            "sft": self.paths.sft_model.format(variant=wildcards.variant),
            "preferences": self.paths.preferences.format(split="train"),
            **self.variant(wildcards).base_input,
        }

    def merge_input(self, wildcards: Any) -> dict[str, str]:
        if wildcards.stage not in TRAINED_STAGES:
            raise ValueError(
                f"merge: the {wildcards.stage} stage has no adapter; ask for .../sft or .../dpo"
            )
        stage = self.paths.stage_model.format(variant=wildcards.variant, stage=wildcards.stage)
        return {"stage": stage, **self.variant(wildcards).base_input}

    def gguf_input(self, wildcards: Any) -> str:
        """The GGUF file convert_gguf converts into the converted folder of that name."""
        if wildcards.gguf not in self.gguf_sources:
            raise ValueError(
                f"{self.paths.converted.format(gguf=wildcards.gguf)}: no variant's base is a "
                f"GGUF of that name (GGUF bases: {', '.join(self.gguf_sources) or 'none'})"
            )
        return self.gguf_sources[wildcards.gguf]

    def builtin_base(self, wildcards: Any) -> str:
        """`builtin:NAME` of the fetch_builtin job for the built-in GGUF file NAME."""
        return f"builtin:{wildcards.builtin}"

    def preference_input(self, wildcards: Any) -> dict[str, str]:
        """The split table, and the user's preference file (task.preferences.source `file`)."""
        inputs = {"split": self.paths.split.format(split=wildcards.split)}
        preferences = self.config["task"]["preferences"]
        if preferences["source"] == "file":
            inputs["file"] = preferences["path"]
        return inputs

    @property
    def inference_table(self) -> str:
        """The table to run inference on: the test split, or the user's table (inference.input)."""
        if self.config["inference"]["input"] == "test":
            return self.paths.split.format(split="test")
        return self.config["inference"]["input"]

    def stage_model(self, variant: str, stage: str) -> dict[str, str]:
        """Folders a stage is loaded from: the base the workflow builds and the stage's own."""
        folders = dict(self.variants[variant].base_input)
        if stage in TRAINED_STAGES:
            folders["adapter"] = self.paths.stage_model.format(variant=variant, stage=stage)
        return folders

    def infer_input(self, wildcards: Any) -> dict[str, str]:
        """The table, the model folders, and for the fewshot stage the train split (examples)."""
        files = {
            "table": self.inference_table,
            **self.stage_model(wildcards.variant, wildcards.stage),
        }
        if wildcards.stage == "fewshot":
            files["examples"] = self.paths.split.format(split="train")
        return files

    def perplexity_input(self, wildcards: Any) -> dict[str, str]:
        return {
            "table": self.paths.split.format(split="validation"),
            **self.stage_model(wildcards.variant, wildcards.stage),
        }

    @property
    def inference_settings(self) -> InferenceSettings:
        return InferenceSettings.pick(self.config["inference"])

    @property
    def perplexity_settings(self) -> PerplexitySettings:
        return PerplexitySettings.pick(self.config["evaluation"])

    @property
    def prediction_metadata(self) -> list[str]:
        """Columns carried into the predictions: the corpus metadata and the derived columns."""
        corpus = self.config["corpus"]
        return corpus["metadata_columns"] + list(corpus["derived_columns"])

    # --- annotation ---------------------------------------------------------------------------

    @property
    def annotated(self) -> bool:
        """True when the run annotates with the chosen stage (a classification task, evaluated)."""
        return self.evaluated

    @property
    def annotation_candidates(self) -> list[tuple[str, str]]:
        """The variant x stage pairs annotation may load: the named one, or every evaluated one
        (the decision is read from metrics.tsv at job time, so the DAG holds them all)."""
        use = self.config["annotate"]["use"]
        if use != "decision":
            return [(use["variant"], use["stage"])]
        return [(v, s) for v in self.variants for s in self.stages]

    @property
    def annotation_models(self) -> dict[str, dict[str, Any]]:
        """{"variant/stage": loading settings, base folder, adapter folder} of each candidate."""
        models = {}
        for variant, stage in self.annotation_candidates:
            folders = self.stage_model(variant, stage)
            models[f"{variant}/{stage}"] = {
                "model": self.variants[variant].loading.params(),
                "base": folders.get("base"),
                "adapter": folders.get("adapter"),
            }
        return models

    @property
    def annotation_files(self) -> list[str]:
        """The user's files annotate.input names (besides `corpus`), sorted."""
        patterns = [p for p in self.config["annotate"]["input"] if p != "corpus"]
        return corpus_paths(patterns) if patterns else []

    def annotate_input_files(self, wildcards: Any) -> dict[str, Any]:
        """The annotate_input job's inputs: the kept corpus shards, the splits, the user's files."""
        files: dict[str, Any] = {"user_files": self.annotation_files}
        if "corpus" in self.config["annotate"]["input"]:
            files["filtered"] = [self.paths.filtered.format(shard=shard) for shard in self.shards]
            files.update({split: self.paths.split.format(split=split) for split in SPLITS})
        return files

    def annotate_shard_input(self, wildcards: Any) -> dict[str, Any]:
        """An annotate job's inputs: its table, the choice, every candidate's model folders, and
        the train and test splits when a candidate is few-shot (its examples)."""
        folders = sorted(
            {f for v, s in self.annotation_candidates for f in self.stage_model(v, s).values()}
        )
        files: dict[str, Any] = {
            "table": self.paths.annotate_input,
            "choice": self.paths.annotate_choice,
            "models": folders,
        }
        if any(stage == "fewshot" for _, stage in self.annotation_candidates):
            files["train"] = self.paths.split.format(split="train")
            files["test"] = self.paths.split.format(split="test")
        return files

    @property
    def annotation_report_files(self) -> dict[str, str]:
        """The annotation files the report cites, by role (none when the run does not annotate)."""
        if not self.annotated:
            return {}
        paths = self.paths
        return {
            "card": paths.annotation_card,
            "estimates": paths.estimates,
            "passages": paths.annotated_passages,
            "documents": paths.annotated_documents,
        }

    @property
    def annotation_targets(self) -> list[str]:
        """The tables, estimates and card of annotation (and the CSV copies when asked)."""
        if not self.annotated:
            return []
        paths = self.paths
        targets = [
            paths.annotated_passages,
            paths.annotated_documents,
            paths.annotate_accounting,
            paths.estimates,
            paths.estimates_png,
            paths.annotation_card,
        ]
        if self.config["annotate"]["csv"]:
            targets += [paths.annotated_passages_csv, paths.annotated_documents_csv]
        return targets

    def annotate_partial(self, wildcards: Any, output: Any) -> str:
        """Chunks of an annotate job, outside its output so they survive a killed job."""
        return self.paths.annotate_partial.format(shard=wildcards.shard)

    # --- export -------------------------------------------------------------------------------

    def export_model_path(self, variant: str, stage: str) -> str:
        """The folder export writes from: the merged adapter (sft, dpo), a `full` variant's stage
        folder, or the base itself (base, fewshot)."""
        plan = self.variants[variant]
        if stage not in TRAINED_STAGES:
            return plan.base_path
        if plan.dpo.method == "full":
            return self.paths.stage_model.format(variant=variant, stage=stage)
        return self.paths.merged.format(variant=variant, stage=stage)

    def export_input(self, variant: str, stage: str) -> dict[str, str]:
        """The export job's model folder (when the workflow builds it), the inference table (the
        label check) and, for fewshot, the train split (the examples); an architecture export
        cannot write is a ValueError here, when the DAG is built."""
        if variant not in self.variants:
            raise ValueError(
                f"export: no variant {variant!r} (variants: {', '.join(self.variants)})"
            )
        plan = self.variants[variant]
        problem = architecture_problem(variant, plan.dpo.base, plan.base_path)
        if problem:
            raise ValueError(problem)
        files = {"table": self.inference_table, **plan.base_input}
        if stage in TRAINED_STAGES:
            files["model"] = self.export_model_path(variant, stage)
        if stage == "fewshot":
            files["examples"] = self.paths.split.format(split="train")
        return files

    def export_job_input(self, wildcards: Any) -> dict[str, str]:
        return self.export_input(wildcards.variant, wildcards.stage)

    def export_job_model_path(self, wildcards: Any) -> str:
        return self.export_model_path(wildcards.variant, wildcards.stage)

    def export_pattern(self, wildcards: Any) -> str:
        """The export folder pattern, as a params function (a params string would be expanded)."""
        return self.paths.export

    def chosen_export(self, checkpoints: Any, wildcards: Any) -> list[str] | str:
        """The export folder of the variant x stage the decision picks: an input function of
        export_chosen that reads the evaluate checkpoint's metrics once it has run (Snakemake's
        `checkpoints` object is passed in by common.smk)."""
        metrics = checkpoints.evaluate.get().output.metrics
        choice = export_choice(self.config["export"], metrics)
        return (
            [] if choice is None else self.paths.export.format(variant=choice[0], stage=choice[1])
        )

    def variant_base(self, wildcards: Any) -> str:
        return self.variant(wildcards).dpo.base

    @property
    def export_targets(self) -> list[str]:
        """The export folder export.use names, or (decision) the record of what was chosen; none
        without an evaluation (decision) or a threshold to decide by."""
        use = self.config["export"]["use"]
        if isinstance(use, dict):
            return [self.paths.export.format(**use)]
        threshold = self.config["evaluation"]["good_enough"]["threshold"]
        if self.evaluated and threshold is not None:
            return [self.paths.export_chosen]
        return []

    # --- targets ------------------------------------------------------------------------------

    def _each(self, pattern: str, stages: list[str] | tuple[str, ...]) -> list[str]:
        return [pattern.format(variant=v, stage=s) for v in self.variants for s in stages]

    @property
    def evaluated(self) -> bool:
        """True when inference runs on the labelled test split of a classification task."""
        return (
            self.config["inference"]["input"] == "test"
            and self.config["task"]["kind"] == "classify"
        )

    @property
    def predictions(self) -> list[str]:
        return self._each(self.paths.predictions, self.stages)

    @property
    def perplexity_tables(self) -> list[str]:
        if not self.config["evaluation"]["perplexity"]:
            return []
        # The fewshot stage's model is the base model: its perplexity is the base stage's.
        stages = [stage for stage in self.stages if stage != "fewshot"]
        return self._each(self.paths.perplexity, stages)

    @property
    def trained_models(self) -> list[str]:
        return self._each(self.paths.stage_model, TRAINED_STAGES)

    @property
    def model_cards(self) -> list[str]:
        return self._each(self.paths.model_card, TRAINED_STAGES)

    @property
    def variant_lengths(self) -> dict[str, str]:
        """Each variant's tokenized-length report (variants that tokenize alike share one)."""
        lengths = self.paths.tokenized_lengths
        return {v: lengths.format(tokenization=p.tokenization) for v, p in self.variants.items()}

    @property
    def metrics(self) -> list[str]:
        """metrics.tsv when the run evaluates on a labelled test split, else nothing."""
        return [self.paths.metrics] if self.evaluated else []

    def targets(self) -> list[str]:
        """What `snakemake` builds by default: every stage's tables, models, predictions, report."""
        paths = self.paths
        data = [
            paths.ingest_report,
            paths.duplicates,
            paths.cluster_summary,
            paths.cluster_map,
            paths.filter_report,
            *(paths.split.format(split=split) for split in SPLITS),
            paths.split_report,
        ]
        lengths = [paths.tokenized_lengths.format(tokenization=t) for t in self.tokenizations]
        evaluation = []
        if self.evaluated:
            evaluation = [paths.metrics, paths.comparison, paths.decision]
        report = [paths.reforms]
        models = self.trained_models + self.predictions
        annotation = self.annotation_targets
        return data + lengths + models + evaluation + annotation + self.export_targets + report
