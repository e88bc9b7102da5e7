"""What the DAG needs from a validated config, worked out once per Snakemake run, without torch.

`Plan(config, cores)` holds the shards and their raw files, each variant's settings as one typed
dataclass per stage (locallm.settings; `params()` gives the dict a rule passes), every stage's
inputs and targets, and each variant's job resources (estimated once, then cached). `common.smk`
builds one Plan and wraps it in Snakemake input functions; the rule files hold only rules.

Only torch-free modules are imported here: the Snakemake controller (a login node, a dry-run) needs
neither torch, transformers nor bitsandbytes.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any

from locallm.config import tokenization_id, tokenization_settings, variant_settings
from locallm.data.sources import corpus_paths, files_by_shard, shards_by_file
from locallm.model.facts import TINY
from locallm.model.loading import resolve_base_path
from locallm.model.preflight import job_resources
from locallm.model.sources import converted_dir, gguf_sources, is_gguf_base
from locallm.scheduling import job_threads
from locallm.settings import (
    SPLITS,
    DPOSettings,
    InferenceSettings,
    LoadingSettings,
    PerplexitySettings,
    SFTSettings,
)

SOTU_JSONL = "resources/sotu/sotu.jsonl"
BOOTSTRAPPED_BASE = "results/models/base"
# Job sizing keys of `training` and `inference`: not in params, so changing them re-runs nothing.
JOB_KEYS = ("threads", "mem_mb", "runtime")
# Stages that training writes, and so the stages that load an adapter (base and fewshot ask the
# base model itself).
TRAINED_STAGES = ("sft", "dpo")


@dataclass(frozen=True)
class VariantPlan:
    """One variant's settings per stage and where its base comes from."""

    name: str
    dpo: DPOSettings
    tokenization: str  # folder under results/tokenized/, shared by variants that tokenize alike
    threads: int | str  # training.threads as configured (`auto` resolved by Plan)
    runtime: int

    @property
    def sft(self) -> SFTSettings:
        return SFTSettings.pick(asdict(self.dpo))

    @property
    def loading(self) -> LoadingSettings:
        return LoadingSettings.pick(asdict(self.dpo))

    @property
    def base_path(self) -> str:
        """Where the base is loaded from: the bootstrapped folder, a local folder or a Hub id."""
        return resolve_base_path(asdict(self.dpo), BOOTSTRAPPED_BASE)

    @property
    def base_input(self) -> dict[str, str]:
        """The base the workflow builds, as an input: bootstrapped (builtin:tiny) or converted
        (GGUF); nothing for a local folder or a Hub id."""
        if self.dpo.base == TINY:
            return {"base": BOOTSTRAPPED_BASE}
        if is_gguf_base(self.dpo.base):
            return {"base": converted_dir(self.dpo.base)}
        return {}


class Plan:
    """Everything the DAG asks of the config, computed once (see the module docstring)."""

    def __init__(self, config: dict[str, Any], cores: int | None = None):
        self.config = config
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
        )

    # --- corpus -------------------------------------------------------------------------------

    @functools.cached_property
    def corpus_files(self) -> list[str]:
        """The raw files to ingest: the exported demo corpus, or the user's globs (sorted)."""
        if self.config["corpus"]["source"] == "sotu":
            return [SOTU_JSONL]
        return corpus_paths(self.config["corpus"]["paths"])

    @functools.cached_property
    def files_of_shards(self) -> dict[int, list[str]]:
        """Every shard's raw files (hashed once per run, not once per ingest job)."""
        return files_by_shard(self.corpus_files, self.config["corpus"]["shards"])

    @property
    def files_sharded_whole(self) -> bool:
        """True when each ingest shard reads whole files (at least as many files as shards)."""
        return shards_by_file(len(self.corpus_files), self.config["corpus"]["shards"])

    def ingest_files(self, shard: str) -> list[str]:
        """The raw files one ingest job reads: its own, or all of them when records are strided."""
        return list(self.files_of_shards[int(shard)])

    def cap_assignments(self) -> list[str]:
        """Every shard's cluster assignments when a per-cluster or per-group cap is set (caps
        count corpus-wide), else nothing."""
        caps = self.config["filter"]
        if caps["cluster_cap"] is None and caps["group_cap"] is None:
            return []
        return [f"results/clusters/assignments/{shard}.parquet" for shard in self.shards]

    # --- threads and resources ----------------------------------------------------------------

    def threads(self, setting: int | str, jobs_at_once: int) -> int:
        """Threads of a job (`auto` shares --cores among `jobs_at_once`: locallm.scheduling)."""
        return job_threads(setting, self.cores, jobs_at_once)

    @property
    def inference_threads(self) -> int:
        """Threads of an infer or perplexity job: `auto` shares the cores by variant x stage."""
        return self.threads(
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
            "threads": self.threads(plan.threads, len(self.variants)),
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

    def tokenized_dir(self, variant: str) -> str:
        """The folder of the variant's tokenized data (shared with variants that tokenize alike)."""
        return f"results/tokenized/{self.variants[variant].tokenization}"

    def tokenize_settings(self, tokenization: str) -> dict[str, Any]:
        """What tokenized data depends on: tokenizer identity, chat template, length, packing."""
        return tokenization_settings(self.config, self.tokenizations[tokenization])

    def tokenizing_variant(self, tokenization: str) -> VariantPlan:
        return self.variants[self.tokenizations[tokenization]]

    def tokenize_input(self, tokenization: str) -> dict[str, str]:
        return {
            "train": "results/sft_data/train.parquet",
            "validation": "results/sft_data/validation.parquet",
            **self.tokenizing_variant(tokenization).base_input,
        }

    def sft_input(self, variant: str) -> dict[str, str]:
        return {"data": f"{self.tokenized_dir(variant)}/data", **self.variants[variant].base_input}

    def dpo_input(self, variant: str) -> dict[str, str]:
        return {
            "sft": f"results/models/{variant}/sft",
            "preferences": "results/preferences/train.parquet",
            **self.variants[variant].base_input,
        }

    def merge_input(self, variant: str, stage: str) -> dict[str, str]:
        if stage not in TRAINED_STAGES:
            raise ValueError(f"merge: the {stage} stage has no adapter; ask for .../sft or .../dpo")
        return {"stage": f"results/models/{variant}/{stage}", **self.variants[variant].base_input}

    def gguf_input(self, gguf: str) -> str:
        """The GGUF file convert_gguf converts into results/models/converted/{gguf}."""
        if gguf not in self.gguf_sources:
            raise ValueError(
                f"results/models/converted/{gguf}: no variant's base is a GGUF of that name "
                f"(GGUF bases: {', '.join(self.gguf_sources) or 'none'})"
            )
        return self.gguf_sources[gguf]

    def preference_input(self, split: str) -> dict[str, str]:
        """The split table, and the user's preference file (task.preferences.source `file`)."""
        inputs = {"split": f"results/splits/{split}.parquet"}
        preferences = self.config["task"]["preferences"]
        if preferences["source"] == "file":
            inputs["file"] = preferences["path"]
        return inputs

    @property
    def inference_table(self) -> str:
        """The table to run inference on: the test split, or the user's table (inference.input)."""
        if self.config["inference"]["input"] == "test":
            return "results/splits/test.parquet"
        return self.config["inference"]["input"]

    def stage_model(self, variant: str, stage: str) -> dict[str, str]:
        """Folders a stage is loaded from: the base the workflow builds and the stage's own."""
        folders = dict(self.variants[variant].base_input)
        if stage in TRAINED_STAGES:
            folders["adapter"] = f"results/models/{variant}/{stage}"
        return folders

    def infer_input(self, variant: str, stage: str) -> dict[str, str]:
        """The table, the model folders, and for the fewshot stage the train split (examples)."""
        files = {"table": self.inference_table, **self.stage_model(variant, stage)}
        if stage == "fewshot":
            files["examples"] = "results/splits/train.parquet"
        return files

    def perplexity_input(self, variant: str, stage: str) -> dict[str, str]:
        return {"table": "results/splits/validation.parquet", **self.stage_model(variant, stage)}

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
    def annotate_threads(self) -> int:
        """Threads of an annotate job: `auto` shares the cores among the annotate shards."""
        return self.threads(self.config["inference"]["threads"], len(self.annotate_shards))

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

    def annotate_input_files(self) -> dict[str, Any]:
        """The annotate_input job's inputs: the kept corpus shards, the splits, the user's files."""
        files: dict[str, Any] = {"user_files": self.annotation_files}
        if "corpus" in self.config["annotate"]["input"]:
            files["filtered"] = [f"results/filtered/{shard}.parquet" for shard in self.shards]
            files.update({split: f"results/splits/{split}.parquet" for split in SPLITS})
        return files

    def annotate_shard_input(self) -> dict[str, Any]:
        """An annotate job's inputs: its table, the choice, every candidate's model folders, and
        the train and test splits when a candidate is few-shot (its examples)."""
        folders = sorted(
            {f for v, s in self.annotation_candidates for f in self.stage_model(v, s).values()}
        )
        files: dict[str, Any] = {
            "table": "results/annotate/input.parquet",
            "choice": "results/annotate/choice.json",
            "models": folders,
        }
        if any(stage == "fewshot" for _, stage in self.annotation_candidates):
            files["train"] = "results/splits/train.parquet"
            files["test"] = "results/splits/test.parquet"
        return files

    @property
    def annotation_report_files(self) -> dict[str, str]:
        """The annotation files the report cites, by role (none when the run does not annotate)."""
        if not self.annotated:
            return {}
        folder = "results/annotate"
        return {
            "card": f"{folder}/card.md",
            "estimates": f"{folder}/estimates.tsv",
            "passages": f"{folder}/passages.parquet",
            "documents": f"{folder}/documents.parquet",
        }

    @property
    def annotation_targets(self) -> list[str]:
        """The tables, estimates and card of annotation (and the CSV copies when asked)."""
        if not self.annotated:
            return []
        folder = "results/annotate"
        targets = [
            f"{folder}/{name}"
            for name in (
                "passages.parquet",
                "documents.parquet",
                "accounting.tsv",
                "estimates.tsv",
                "estimates.png",
                "card.md",
            )
        ]
        if self.config["annotate"]["csv"]:
            targets += [f"{folder}/passages.csv", f"{folder}/documents.csv"]
        return targets

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
        return self._each("results/predictions/{variant}/{stage}.parquet", self.stages)

    @property
    def perplexity_tables(self) -> list[str]:
        if not self.config["evaluation"]["perplexity"]:
            return []
        # The fewshot stage's model is the base model: its perplexity is the base stage's.
        stages = [stage for stage in self.stages if stage != "fewshot"]
        return self._each("results/eval/perplexity/{variant}/{stage}.parquet", stages)

    @property
    def trained_models(self) -> list[str]:
        return self._each("results/models/{variant}/{stage}", TRAINED_STAGES)

    @property
    def model_cards(self) -> list[str]:
        return self._each("results/report/model_cards/{variant}/{stage}.md", TRAINED_STAGES)

    @property
    def variant_lengths(self) -> dict[str, str]:
        """Each variant's tokenized-length report (variants that tokenize alike share one)."""
        return {v: f"{self.tokenized_dir(v)}/lengths.tsv" for v in self.variants}

    @property
    def metrics(self) -> list[str]:
        """metrics.tsv when the run evaluates on a labelled test split, else nothing."""
        return ["results/eval/metrics.tsv"] if self.evaluated else []

    def targets(self) -> list[str]:
        """What `snakemake` builds by default: every stage's tables, models, predictions, report."""
        data = [
            "results/corpus/ingest_report.tsv",
            "results/dedup/duplicates.parquet",
            "results/clusters/summary.tsv",
            "results/clusters/map.png",
            "results/filtered/filter_report.tsv",
            *(f"results/splits/{split}.parquet" for split in SPLITS),
            "results/splits/split_report.tsv",
        ]
        lengths = [f"results/tokenized/{t}/lengths.tsv" for t in self.tokenizations]
        evaluation = []
        if self.evaluated:
            evaluation = [
                "results/eval/metrics.tsv",
                "results/eval/comparison.png",
                "results/eval/decision.md",
            ]
        report = ["results/report/REFORMS.md"]
        return (
            data
            + lengths
            + self.trained_models
            + self.predictions
            + evaluation
            + self.annotation_targets
            + report
        )
