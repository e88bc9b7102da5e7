"""Each stage's settings as a typed dataclass (TRL-style), built by locallm.plan from the config.

`params()` is the dict a rule passes to its script: the same keys as the config, sorted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from locallm.config import canonical

SPLITS = ("train", "validation", "test")


class Settings:
    """A stage's settings: `params()` is the dict its rule passes to the script (sorted keys, so
    that Snakemake, which compares params by repr, re-runs a job only when a value changes)."""

    def params(self) -> dict[str, Any]:
        return canonical(asdict(self))

    @classmethod
    def pick(cls, settings: dict[str, Any]) -> Settings:
        """The fields of this stage out of a larger settings dict."""
        return cls(**{field.name: settings[field.name] for field in fields(cls)})


@dataclass(frozen=True)
class LoadingSettings(Settings):
    """How a variant's model is loaded and asked (infer, perplexity): base, revision, remote code,
    method, prompt format.
    Training hyperparameters are left out: a retrained stage reaches inference as a changed input,
    and the base stage does not depend on them."""

    base: str
    revision: str | None
    trust_remote_code: bool
    cache_dir: str | None
    method: str
    # How prompts are rendered: inference renders the base and fewshot stages as training does.
    chat_template: str | None
    prompt_format: str
    completion_format: str


@dataclass(frozen=True)
class SFTSettings(LoadingSettings):
    """What an SFT run depends on: a change to a DPO key does not re-run SFT."""

    lora_r: int
    lora_alpha: float
    lora_dropout: float
    target_modules: str | list[str]
    use_dora: bool
    use_rslora: bool
    neftune_noise_alpha: float | None
    gradient_checkpointing: bool
    max_length: int
    packing: bool
    max_truncated_share: float
    truncation_error: bool
    learning_rate: float
    lr_scheduler_type: str
    warmup_steps: int
    weight_decay: float
    max_steps: int
    per_device_batch_size: int
    gradient_accumulation_steps: int
    save_steps: int
    save_total_limit: int
    logging_steps: int
    num_processes: int
    precision: str


@dataclass(frozen=True)
class DPOSettings(SFTSettings):
    """What a DPO run depends on: every SFT setting (DPO starts from that adapter) and the dpo_
    keys. Also the settings of fetch_base and merge."""

    dpo_beta: float
    dpo_loss_type: str
    dpo_learning_rate: float
    dpo_max_steps: int
    dpo_max_length: int | None


@dataclass(frozen=True)
class InferenceSettings(Settings):
    """The `inference` section without job sizing (rule infer)."""

    input: str
    shards: int
    mode: str
    label_scoring: str
    batch_size: int
    batch_tokens: int
    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_p: float
    num_samples: int
    stages: list[str]
    fewshot_k: int
    fewshot_shortest: float
    max_cut_share: float
    precision: str
    prefix_cache: bool


@dataclass(frozen=True)
class PerplexitySettings(Settings):
    """The evaluation keys perplexity reads: the decision or bootstrap settings do not re-run it."""

    perplexity_max_texts: int
    perplexity_max_tokens: int
    perplexity_batch_size: int


def split_fractions(settings: dict) -> dict[str, float]:
    """The configured fractions per split, checked to sum to 1."""
    fractions = {name: float(settings[name]) for name in SPLITS}
    total = sum(fractions.values())
    if abs(total - 1) > 1e-6:
        terms = " + ".join(f"split.{name} {value:g}" for name, value in fractions.items())
        raise ValueError(f"config {terms} = {total:g}; the three fractions must sum to 1")
    return fractions
