"""Write a transformers Llama folder (safetensors, tokenizer, chat template) as one GGUF file.

llama.cpp, Ollama and LM Studio read GGUF: metadata (shape, tokenizer, chat template, licence)
followed by the tensors under llama.cpp's names, in float16 or block-quantized types. The `gguf`
package (llama.cpp's own Python library) supplies the writer, the tensor names and the quantizers;
this module decides what goes in. Only the Llama architecture is written (SmolLM2, builtin:tiny).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from locallm.logs import get_logger

log = get_logger(__name__)

# Weight types on offer (export.type), as llama.cpp names them.
WEIGHT_TYPES = ("f16", "q8_0", "q4_0", "q4_1", "q5_0")
# transformers model_type values this writer handles, and the GGUF architecture they become.
GGUF_ARCHITECTURES = {"llama": "llama"}


class UnsupportedArchitectureError(ValueError):
    """A model this writer cannot express in GGUF."""


def unsupported_message(model_type: str | None, where: str) -> str:
    """Why a model cannot be exported, and what can be."""
    return (
        f"{where}: export writes GGUF for Llama-architecture models only (SmolLM2, builtin:tiny, "
        f"other `llama` models), not {model_type!r}; export another variant (export.use) or "
        "convert this one with llama.cpp's convert_hf_to_gguf.py"
    )


def _qtypes(weight_type: str):
    """(GGMLQuantizationType, LlamaFileType) of an export.type value."""
    from gguf import GGMLQuantizationType, LlamaFileType

    if weight_type not in WEIGHT_TYPES:
        raise ValueError(f"config export.type {weight_type!r}: allowed {', '.join(WEIGHT_TYPES)}")
    name = weight_type.upper()
    file_type = LlamaFileType.MOSTLY_F16 if name == "F16" else LlamaFileType[f"MOSTLY_{name}"]
    return GGMLQuantizationType[name], file_type


def llama_rope_order(weight: np.ndarray, heads: int) -> np.ndarray:
    """Reorder a q_proj/k_proj weight's rows from transformers' rotary layout to llama.cpp's.

    transformers rotates each head's first half of dimensions against its second half; llama.cpp's
    `llama` graph rotates adjacent pairs (2i, 2i+1). Row j of the first half and row j of the second
    half of each head become neighbours, so the rotation pairs the same numbers in both.
    """
    rows = weight.shape[0]
    half = rows // heads // 2
    by_head = weight.reshape(heads, 2, half, *weight.shape[1:])
    return np.ascontiguousarray(np.swapaxes(by_head, 1, 2)).reshape(weight.shape)


def _state_dict(model_dir: Path) -> dict[str, np.ndarray]:
    """Every tensor of the folder's safetensors files, as float32 numpy arrays."""
    from safetensors.torch import load_file

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no *.safetensors weights to export")
    tensors: dict[str, np.ndarray] = {}
    for file in files:
        for name, tensor in load_file(file).items():
            tensors[name] = tensor.float().numpy()
    return tensors


def gguf_tensors(
    state: Mapping[str, np.ndarray], config: Mapping[str, Any]
) -> Iterator[tuple[str, np.ndarray]]:
    """(GGUF name, float32 array) of each weight, with q/k rows in llama.cpp's rotary order."""
    import gguf

    layers = config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
    for hf_name, array in state.items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue  # recomputed from rope.freq_base
        if hf_name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue  # tied: llama.cpp reuses token_embd for the output
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UnsupportedArchitectureError(
                f"tensor {hf_name!r} has no llama.cpp name: not a plain Llama model"
            )
        if hf_name.endswith("q_proj.weight"):
            array = llama_rope_order(array, heads)
        elif hf_name.endswith("k_proj.weight"):
            array = llama_rope_order(array, kv_heads)
        yield name, array


# Tensors kept at 8 bits in a 4- or 5-bit file: the embeddings (also the output layer when tied)
# and the output layer touch every token's logits, and llama.cpp's own quantizer spares them too.
SPARED = ("token_embd.weight", "output.weight")


def encode_tensor(array: np.ndarray, weight_type: str, name: str = "") -> tuple[np.ndarray, Any]:
    """The array in the export's type: vectors (norms) stay float32, as llama.cpp requires; the
    embeddings and output layer of a 4/5-bit file are 8-bit; a matrix whose rows do not split into
    quantization blocks falls back to float16."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import quantize

    qtype, _ = _qtypes(weight_type)
    if array.ndim < 2:
        return array.astype(np.float32), GGMLQuantizationType.F32
    if name in SPARED and weight_type not in ("f16", "q8_0"):
        qtype = GGMLQuantizationType.Q8_0
    block = GGML_QUANT_SIZES[qtype][0]
    if array.shape[-1] % block:
        qtype = GGMLQuantizationType.F16
    return quantize(array.astype(np.float32), qtype), qtype


def pre_tokenizer_name(tokenizer_json: Mapping[str, Any]) -> str:
    """llama.cpp's name for how the tokenizer splits text before BPE (tokenizer.ggml.pre).

    Recognised by the splitting rules, not by a hash of test strings as llama.cpp's converter does:
    plain byte-level (GPT-2's rule, builtin:tiny) and SmolLM's (single digits, then byte-level).
    """
    pre = tokenizer_json.get("pre_tokenizer") or {}
    kinds = [p.get("type") for p in pre.get("pretokenizers", [pre])]
    if kinds == ["ByteLevel"] and pre.get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"]:
        return "smollm"
    log.warning("pre-tokenizer %s not recognised: tokenizer.ggml.pre set to `default`", kinds)
    return "default"


def vocabulary(model_dir: Path, n_vocab: int) -> tuple[list[str], list[int], str]:
    """Tokens (byte-level spelling) by id, their llama.cpp types, and the pre-tokenizer name.

    Added tokens marked special are CONTROL (matched whole, never produced from text pieces),
    other added tokens USER_DEFINED; embedding rows past the tokenizer (padding) are UNUSED.
    """
    from gguf import TokenType

    tokenizer_json = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    model = tokenizer_json["model"]
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise UnsupportedArchitectureError(
            f"{model_dir}/tokenizer.json: a {model.get('type')} tokenizer; export writes "
            "byte-level BPE (GPT-2 style) tokenizers only"
        )
    by_id = {index: token for token, index in model["vocab"].items()}
    types = dict.fromkeys(by_id, int(TokenType.NORMAL))
    for added in tokenizer_json.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
        types[added["id"]] = int(TokenType.CONTROL if added["special"] else TokenType.USER_DEFINED)
    size = max(n_vocab, max(by_id) + 1)
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(size)]
    kinds = [types.get(i, int(TokenType.UNUSED)) for i in range(size)]
    return tokens, kinds, pre_tokenizer_name(tokenizer_json)


def write_gguf(
    model_dir: str | os.PathLike,
    output: str | os.PathLike,
    weight_type: str,
    facts: Mapping[str, Any],
) -> dict[str, int]:
    """Write the Llama model in `model_dir` as a GGUF file; returns the count of tensors per type.

    `facts` (name, licence, description, and the workflow's training facts) go into the metadata:
    `general.*` keys where llama.cpp has one, the rest as strings under `locallm.*`.
    """
    import gguf

    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    model_type = config.get("model_type")
    if model_type not in GGUF_ARCHITECTURES:
        raise UnsupportedArchitectureError(unsupported_message(model_type, str(model_dir)))
    rope = (config.get("rope_parameters") or config.get("rope_scaling") or {}).get("rope_type")
    if rope not in (None, "default"):
        # llama.cpp has keys for scaled RoPE (llama3, yarn), but this writer does not set them.
        raise UnsupportedArchitectureError(
            f"{model_dir}: RoPE scaling {rope!r} is not written by this exporter (plain RoPE only)"
        )
    _, file_type = _qtypes(weight_type)
    state = _state_dict(model_dir)
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    n_vocab = state["model.embed_tokens.weight"].shape[0]

    writer = gguf.GGUFWriter(os.fspath(output), GGUF_ARCHITECTURES[model_type])
    writer.add_name(str(facts.get("name") or model_dir.name))
    if facts.get("licence"):
        writer.add_license(str(facts["licence"]))
    if facts.get("description"):
        writer.add_description(str(facts["description"]))
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(hidden)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads") or heads)
    writer.add_rope_dimension_count(config.get("head_dim") or hidden // heads)
    writer.add_rope_freq_base(float(_rope_theta(config)))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(file_type)
    for key, value in facts.items():
        if key not in ("name", "licence", "description") and value is not None:
            writer.add_string(
                f"locallm.{key}", value if isinstance(value, str) else json.dumps(value)
            )

    tokens, kinds, pre = vocabulary(model_dir, n_vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(kinds)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=len(tokens))
    # The workflow feeds the rendered chat prompt without adding special tokens (the template
    # writes any it needs), so llama.cpp must not add a BOS or EOS of its own.
    special.add_special_token = {"bos": False, "eos": False}
    special.add_to_gguf(writer, quiet=True)

    counts: dict[str, int] = {}
    for name, array in gguf_tensors(state, config):
        data, qtype = encode_tensor(array, weight_type, name)
        writer.add_tensor(name, data, raw_dtype=qtype)
        counts[qtype.name] = counts.get(qtype.name, 0) + 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    log.info("wrote %s (%s): tensors by type %s", output, weight_type, counts)
    return counts


def _rope_theta(config: Mapping[str, Any]) -> float:
    """RoPE's base frequency (transformers 5 keeps it under rope_parameters)."""
    parameters = config.get("rope_parameters") or {}
    return parameters.get("rope_theta") or config.get("rope_theta") or 10000.0
