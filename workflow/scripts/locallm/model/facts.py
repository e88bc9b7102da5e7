"""Facts about a base model read from its small files, without loading it: which builtin or Hub
form it has, its context length, whether it ships a chat template, and its licence.

Planning, pre-flight, cards and export read these; nothing here imports torch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

TINY = "builtin:tiny"
RUN_INFO = "run_info.json"
# A Hub id is `name` or `owner/name` of letters, digits, `-`, `_` and `.`.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# What a model needs from a Hub repository: weights as safetensors, configs, tokenizer files.
HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "*.md"]


# Config keys under which architectures name their number of positions, most common first.
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length")


def context_length(config: Mapping[str, Any] | Any) -> int | None:
    """The model's context (positions) from its config (a config.json dict or a loaded config).

    Multimodal configs keep the language model's settings under `text_config`. None: unknown.
    """
    if not isinstance(config, Mapping):
        config = config.to_dict()
    text_config = config.get("text_config") or config
    for key in CONTEXT_KEYS:
        value = text_config.get(key) or config.get(key)
        if value:
            return int(value)
    return None


def model_card_licence(model_dir: Path) -> str | None:
    """The `license` named in the model card's YAML front matter (README.md), if any."""
    card = model_dir / "README.md"
    if not card.exists():
        return None
    text = card.read_text(errors="replace")
    if not text.startswith("---"):
        return None
    front = text.split("---", 2)[1] if text.count("---") >= 2 else ""
    try:
        meta = yaml.safe_load(front) or {}
    except yaml.YAMLError:
        return None
    licence = meta.get("license") if isinstance(meta, dict) else None
    if licence in ("other", None) and isinstance(meta, dict) and meta.get("license_name"):
        licence = meta["license_name"]
    return ", ".join(licence) if isinstance(licence, list) else licence


def has_chat_template(model_dir: Path) -> bool:
    """True when the tokenizer ships a chat template (an instruct or chat model)."""
    if (model_dir / "chat_template.jinja").exists() or (model_dir / "chat_template.json").exists():
        return True
    config = model_dir / "tokenizer_config.json"
    return config.exists() and bool(json.loads(config.read_text()).get("chat_template"))


def base_licence(base: str, base_dir: str | Path | None) -> str | None:
    """The licence of a variant's base: the catalogue's for a built-in, else its model card's."""
    from locallm.model.sources import BUILTIN_WHEELS

    if base in BUILTIN_WHEELS:
        return BUILTIN_WHEELS[base].licence
    if base_dir and Path(base_dir).is_dir():
        return model_card_licence(Path(base_dir))
    return None
