"""GGUF bases (llama.cpp, Ollama, LM Studio files): where they come from, what they are, conversion.

A base given as a `.gguf` file (or a built-in one, fetched as a GGUF) is converted once, by the rule
convert_gguf, into a float32 save_pretrained folder (safetensors, tokenizer, chat template) under
results/NAME/models/converted/; every later rule loads that folder like any local base. Pre-flight
reads the GGUF's metadata (its header only: no tensor is dequantized).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from locallm.logs import get_logger
from locallm.model.sources import CONVERSION_INFO
from locallm.tables import atomic_dir, write_json

log = get_logger("gguf_bases")


# Architectures whose GGUF names a sliding window but not which layers use it: every n-th layer
# attends to the whole context, the others to the window (transformers' Gemma3TextConfig default
# `sliding_window_pattern` 6, which its GGUF loader and llama.cpp's gemma3 both use).
GGUF_GLOBAL_LAYER_EVERY = {"gemma3": 6}


def gguf_sliding_attention(arch: str, window: Any, layers: int) -> dict[str, int]:
    """`sliding_window` and `sliding_layers` of a GGUF's model (nothing when it has no window)."""
    if not isinstance(window, int) or not window:
        return {}
    every = GGUF_GLOBAL_LAYER_EVERY.get(arch)
    sliding = layers - layers // every if every else layers
    return {"sliding_window": window, "sliding_layers": sliding}


def _field(reader, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def gguf_facts(path: str | os.PathLike) -> dict[str, Any]:
    """Shape, parameters, context length, chat template and licence from a GGUF file's metadata."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"GGUF base {path} not found (looked in {path.resolve()})")
    stat = path.stat()
    return dict(_gguf_facts(path.resolve(), stat.st_size, stat.st_mtime_ns))


def gguf_reader(path: str | os.PathLike):
    """gguf.GGUFReader of `path` (metadata and tensor index, no tensor read); a file that is not
    GGUF or is cut short is a ValueError naming it, not the reader's bare unpacking error."""
    from gguf import GGUFReader

    try:
        return GGUFReader(path)
    except Exception as error:  # gguf raises ValueError, struct.error, IndexError... on bad bytes
        raise ValueError(
            f"GGUF base {path}: not a readable GGUF file ({type(error).__name__}: {error}); it may "
            "be truncated or another format: download or copy it again"
        ) from None


def gguf_problem(path: str | os.PathLike) -> str | None:
    """Why the GGUF file at `path` cannot be read (None when it can, or is not there yet)."""
    if not Path(path).is_file():
        return None
    try:
        gguf_reader(path)
    except ValueError as error:
        return str(error)
    return None


def _quantization(file_type: Any) -> str | None:
    """llama.cpp's name of a GGUF's weight type (file_type 3 -> 'Q4_1'); None if unknown."""
    from gguf import LlamaFileType

    try:
        return LlamaFileType(file_type).name.removeprefix("MOSTLY_")
    except (ValueError, TypeError):
        return None


@functools.lru_cache(maxsize=16)
def _gguf_facts(path: Path, size: int, mtime_ns: int) -> dict[str, Any]:
    """gguf_facts, read once per file version (the DAG asks for it for every job's resources)."""
    from locallm.model.shape import ModelShape, shape_from_meta

    reader = gguf_reader(path)
    arch = _field(reader, "general.architecture")
    params = sum(int(tensor.n_elements) for tensor in reader.tensors)

    def arch_field(name: str) -> Any:
        return _field(reader, f"{arch}.{name}")

    hidden, heads = arch_field("embedding_length"), arch_field("attention.head_count")
    dims = [hidden, arch_field("feed_forward_length"), arch_field("block_count"), heads]
    shape = None
    # Per-layer lists (some architectures vary heads or widths by layer) are left to the meta count.
    if all(isinstance(d, int) for d in dims):
        tokens = reader.fields.get("tokenizer.ggml.tokens")
        kv_heads = arch_field("attention.head_count_kv")
        shape = ModelShape(
            vocab_size=arch_field("vocab_size") or (len(tokens.data) if tokens else 0),
            hidden_size=hidden,
            intermediate_size=dims[1],
            num_layers=dims[2],
            num_heads=heads,
            num_kv_heads=kv_heads if isinstance(kv_heads, int) else heads,
            head_dim=arch_field("attention.key_length") or hidden // heads,
            tie_word_embeddings=not any(t.name == "output.weight" for t in reader.tensors),
            context_length=arch_field("context_length"),
            # The tensors' count is exact where the rule's is not (Gemma's extra norms).
            counted_params=params,
            **gguf_sliding_attention(arch, arch_field("attention.sliding_window"), dims[2]),
        )
    else:
        # No LLaMA-style widths: build the model transformers would read from it on the meta device.
        shape = shape_from_meta(path.parent, gguf_file=path.name)
    return {
        "architecture": arch,
        "quantization": _quantization(_field(reader, "general.file_type")),
        "shape": shape,
        "params": params,
        "context_length": arch_field("context_length"),
        "chat_template": bool(_field(reader, "tokenizer.chat_template")),
        "licence": _field(reader, "general.license"),
        "name": _field(reader, "general.name"),
    }


def load_gguf(path: str | os.PathLike):
    """(model, tokenizer) as transformers reads a GGUF file: dequantized to float32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    )
    return model.eval(), tokenizer


def plain_copy(model):
    """The same weights in a model that save_pretrained accepts (transformers refuses to save a
    model it loaded from GGUF: it is flagged as quantized, though its tensors are float32)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    settings = model.config.to_dict()
    settings.pop("quantization_config", None)
    settings.pop("_name_or_path", None)
    config = AutoConfig.for_model(**settings)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict(), strict=True)
    return plain.eval()


def distinct_pad(tokenizer) -> None:
    """Make the pad token an existing token other than EOS (llama.cpp files often pad with EOS).

    Masking padding must never mask the EOS the model learns to end an answer with; an existing
    token (the unknown token, else BOS) avoids adding an embedding row to a released model.
    """
    if tokenizer.pad_token is not None and tokenizer.pad_token != tokenizer.eos_token:
        return
    for candidate in (tokenizer.unk_token, tokenizer.bos_token):
        if candidate is not None and candidate != tokenizer.eos_token:
            log.info("pad token: %r (the GGUF pads with EOS %r)", candidate, tokenizer.eos_token)
            tokenizer.pad_token = candidate
            return


def convert_gguf(gguf: str | os.PathLike, output: str | os.PathLike, threads: int = 1) -> None:
    """Convert a GGUF file into a float32 save_pretrained folder with its tokenizer and template."""
    import torch

    torch.set_num_threads(max(1, threads))
    facts = gguf_facts(gguf)
    log.info(
        "%s: %s (%s), %d parameters", gguf, facts["name"], facts["architecture"], facts["params"]
    )
    model, tokenizer = load_gguf(gguf)
    if not tokenizer.chat_template:
        log.info("%s has no chat template: a base model, asked in training.completion_format", gguf)
    distinct_pad(tokenizer)
    plain = plain_copy(model)
    plain.config.pad_token_id = tokenizer.pad_token_id
    with atomic_dir(output) as folder:
        plain.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        write_json(
            {
                "source": str(gguf),
                "source_bytes": Path(gguf).stat().st_size,
                "name": facts["name"],
                "architecture": facts["architecture"],
                "quantization": facts["quantization"],
                "parameters": facts["params"],
                "context_length": facts["context_length"],
                "licence": facts["licence"],
                "dtype": "float32",
            },
            folder / CONVERSION_INFO,
        )
        # A model card whose front matter carries the licence, as a Hub folder's does.
        (folder / "README.md").write_text(
            f"---\nlicense: {facts['licence'] or 'other'}\n---\n"
            f"{facts['name']}, converted to float32 safetensors from {Path(gguf).name}.\n"
        )
    log.info("converted %s into %s", gguf, output)
