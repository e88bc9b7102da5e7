"""Find and load models: the base (builtin:tiny, a GGUF, a local folder, a Hub id) and a stage.

`load_stage_model` is the one loader for training and inference: 4-bit NF4 for QLoRA, 16/32-bit
otherwise, safetensors only, remote code only when the config says so, and adapters only on the base
they were trained on.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from locallm.hashing import fingerprint
from locallm.logs import get_logger
from locallm.model.facts import HUB_FILES, HUB_ID, RUN_INFO, TINY
from locallm.model.precision import compute_dtype, on_gpu
from locallm.model.sources import is_gguf_base

# torch is imported where it is used: Snakemake imports this module while it plans the DAG, and
# importing torch there cost every `snakemake` call 1-2 s.
if TYPE_CHECKING:
    import torch

log = get_logger("models")


class ModelNotFoundError(FileNotFoundError):
    """A base model that is neither a local folder nor a reachable or cached Hub id."""


class AdapterMismatchError(ValueError):
    """An adapter (or fine-tuned model) trained on another base than the one configured."""


def resolve_base_path(settings: dict[str, Any], built_dir: str | None = None) -> str:
    """The folder or Hub id of the variant's base. `builtin:tiny` and GGUF bases are built by the
    workflow (bootstrap_base, convert_gguf): `built_dir` is that folder, the job's `base` input."""
    base = settings["base"]
    if base == TINY or is_gguf_base(base):
        if built_dir is None:
            raise ValueError(f"base {base!r} is built by the workflow: give its folder")
        return built_dir
    if Path(base).expanduser().is_dir():
        return str(Path(base).expanduser())
    if HUB_ID.match(base) and not base.startswith("."):
        return base
    raise ModelNotFoundError(
        f"config base {base!r}: no such folder (looked in {Path(base).expanduser().resolve()}) "
        f"and not a Hub id (owner/name); save a model there with save_pretrained, name a Hub id "
        "or a .gguf file"
    )


def local_model_dir(base_path: str, settings: dict[str, Any]) -> str:
    """A local folder holding the base: the path itself, or the Hub snapshot in the cache."""
    if Path(base_path).is_dir():
        return base_path
    if not HUB_ID.match(base_path):
        raise ModelNotFoundError(
            f"model folder {base_path!r} not found (looked in {Path(base_path).resolve()})"
        )
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    cache = settings.get("cache_dir") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
    try:
        return snapshot_download(
            base_path,
            revision=settings.get("revision"),
            cache_dir=settings.get("cache_dir"),
            local_files_only=offline,
            allow_patterns=HUB_FILES,
        )
    except Exception as error:  # noqa: BLE001 - every failure here means "not available"
        where = f"the Hub cache under {cache}" + (
            " (HF_HUB_OFFLINE is set)" if offline else " and huggingface.co"
        )
        fetch = f"hf download {base_path}" + (
            f" --revision {settings['revision']}" if settings.get("revision") else ""
        )
        raise ModelNotFoundError(
            f"model {base_path!r} not found: no local folder of that name, nor in {where} "
            f"({type(error).__name__}); fetch it on a machine with internet with `{fetch}` "
            f"(same HF_HOME / model.cache_dir), or set the variant's base to a local folder"
        ) from None


def check_same_base(stage_dir: str | os.PathLike, base_dir: str, base_print: str) -> None:
    """Refuse a stage trained on another base than `base_dir` (fingerprint in its run_info.json)."""
    stage_dir = Path(stage_dir)
    info_path = stage_dir / RUN_INFO
    if info_path.exists():
        trained_on = json.loads(info_path.read_text()).get("base_fingerprint")
        if trained_on and trained_on != base_print:
            raise AdapterMismatchError(
                f"{stage_dir} was trained on another base (fingerprint {trained_on}) than "
                f"{base_dir} (fingerprint {base_print}); retrain it on this base or configure "
                "the base it was trained on"
            )
        return
    adapter_config = stage_dir / "adapter_config.json"
    if adapter_config.exists():
        trained_on = json.loads(adapter_config.read_text()).get("base_model_name_or_path")
        if trained_on and Path(trained_on).name != Path(base_dir).name:
            raise AdapterMismatchError(
                f"adapter {stage_dir} was trained on {trained_on!r}, not on {base_dir!r}; "
                f"configure that base or retrain the adapter"
            )


def quantization_config(settings: dict[str, Any], dtype: torch.dtype | None = None):
    """4-bit NF4 with double quantization for QLoRA, its matmuls in `dtype` (by default
    compute_dtype()); None for the other methods."""
    if settings["method"] != "qlora":
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype or compute_dtype(),
    )


def _device_map() -> dict[str, int] | None:
    """Each process's GPU (its LOCAL_RANK under torchrun), or None on the CPU."""
    if not on_gpu():
        return None
    return {"": int(os.environ.get("LOCAL_RANK", "0"))}


def load_tokenizer(path: str, settings: dict[str, Any]):
    """The tokenizer at `path`, with a pad and an EOS token (added and logged when missing)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        path, revision=settings.get("revision"), trust_remote_code=settings["trust_remote_code"]
    )
    if tokenizer.eos_token is None:
        tokenizer.add_special_tokens({"eos_token": "<|end|>"})
        log.warning("tokenizer at %s has no EOS token: added <|end|> (saved with each stage)", path)
    if tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token:
        # A pad distinct from EOS, so masking padding never masks the EOS the model must learn.
        tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
        log.warning("tokenizer at %s has no pad token distinct from EOS: added <|pad|>", path)
    return tokenizer


def _from_pretrained(path: str, settings: dict[str, Any], quantize: bool, dtype=None, compute=None):
    """AutoModelForCausalLM.from_pretrained with the project's safety and precision settings."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        path,
        revision=settings.get("revision") if not Path(path).is_dir() else None,
        trust_remote_code=settings["trust_remote_code"],
        use_safetensors=True,
        dtype=dtype or compute_dtype(),
        quantization_config=quantization_config(settings, compute or dtype) if quantize else None,
        device_map=_device_map(),
        attn_implementation="sdpa",
    )


def load_stage_model(
    settings: dict[str, Any],
    base_path: str,
    adapter_dir: str | None,
    *,
    trainable: bool = False,
    dtype: torch.dtype | None = None,
    precision: str | None = None,
) -> tuple[Any, Any]:
    """(model, tokenizer) of a stage: the base, plus the adapter at `adapter_dir` (or, for method
    `full`, the fine-tuned model saved there). QLoRA loads the base in 4-bit NF4.

    `trainable` prepares a 4-bit base for training and loads the adapter with trainable weights.
    `dtype` (default: compute_dtype()) is what the weights, adapters included, load and compute in
    (inference). `precision` is training's (float32 or bfloat16 autocast): the weights stay in
    float32 or compute_dtype() (the optimizer's copy), and QLoRA's 4-bit matmuls run in it.
    """
    method = settings["method"]
    if method not in ("qlora", "lora", "full"):
        raise ValueError(f"config method {method!r}: allowed values are qlora, lora, full")
    base_dir = local_model_dir(base_path, settings)
    if adapter_dir is not None:
        if not Path(adapter_dir).is_dir():
            raise ModelNotFoundError(
                f"stage folder {adapter_dir!r} not found; run its training rule first"
            )
        check_same_base(adapter_dir, base_dir, fingerprint(base_dir))
    has_tokenizer = (
        adapter_dir is not None and (Path(adapter_dir) / "tokenizer_config.json").exists()
    )
    tokenizer = load_tokenizer(adapter_dir if has_tokenizer else base_dir, settings)

    import torch

    compute = getattr(torch, precision) if precision else None
    if precision == "float32":
        dtype = dtype or torch.float32
    if method == "full":
        model = _from_pretrained(adapter_dir or base_dir, settings, False, dtype, compute)
    else:
        model = _from_pretrained(base_dir, settings, method == "qlora", dtype, compute)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    if method == "qlora" and trainable:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=settings["gradient_checkpointing"]
        )
    if method != "full" and adapter_dir is not None:
        from peft import PeftModel

        # PEFT keeps adapters in float32 unless told otherwise; a bf16 base wants bf16 adapters.
        model = PeftModel.from_pretrained(
            model, adapter_dir, is_trainable=trainable, autocast_adapter_dtype=dtype is None
        )
    if not trainable:
        model.eval()
    return model, tokenizer


def parameter_count(model) -> int:
    """Parameters of a loaded model as its checkpoint counts them (a 4-bit weight is packed two to
    a byte, so its quantization state's shape counts, not the packed tensor); adapters included."""
    total = 0
    for parameter in model.parameters():
        state = getattr(parameter, "quant_state", None)
        total += math.prod(state.shape) if state is not None else parameter.numel()
    return total
