"""The schema is the one source of defaults, and config errors name the key."""

from pathlib import Path

import pytest
from locallm.config import (
    load_config,
    tokenization_id,
    tokenization_settings,
    variant_settings,
    with_defaults,
)

ROOT = Path(__file__).resolve().parents[1]


def test_empty_config_gets_schema_defaults():
    config = with_defaults({})
    assert config["seed"] == 1234
    assert config["dedup"]["bands"] * config["dedup"]["rows"] == 100
    assert config["filter"]["gopher_quality"]["min_words"] == 50


def test_wrong_type_names_the_key():
    with pytest.raises(ValueError, match=r"config key dedup\.bands"):
        with_defaults({"dedup": {"bands": "many"}})


def test_unknown_key_is_rejected_with_its_name():
    with pytest.raises(ValueError, match="shardz"):
        with_defaults({"corpus": {"shardz": 3}})


def test_enum_error_lists_allowed_values():
    with pytest.raises(ValueError, match="sotu"):
        with_defaults({"corpus": {"source": "web"}})


@pytest.mark.parametrize("name", ["config.yaml", "test.yaml"])
def test_shipped_configs_validate(name):
    config = load_config(ROOT / "config" / name)
    assert config["variants"]


def test_variant_overrides_training_defaults_and_inherits_base():
    config = with_defaults({"variants": {"big": {"lora_r": 64}}, "model": {"base": "some/model"}})
    settings = variant_settings(config, "big")
    assert settings["lora_r"] == 64
    assert settings["base"] == "some/model"
    assert settings["method"] == config["training"]["method"]


def test_variant_with_unknown_key_names_it():
    config = with_defaults({"variants": {"v": {"lora_rank": 4}}})
    with pytest.raises(KeyError, match="lora_rank"):
        variant_settings(config, "v")


def test_config_readme_matches_schema():
    from locallm.config import options_markdown

    committed = (ROOT / "config" / "README.md").read_text()
    assert committed == options_markdown(), (
        "config/README.md is stale: run "
        "`cd workflow/scripts && python -m locallm.config > ../../config/README.md`"
    )


def test_variants_that_tokenize_alike_share_a_tokenization_id():
    config = with_defaults(
        {
            "variants": {
                "r8": {"method": "qlora", "lora_r": 8, "learning_rate": 0.01},
                "r16": {"method": "qlora", "lora_r": 16},
                "short": {"method": "qlora", "max_length": 128},
                "unpacked": {"method": "qlora", "packing": False},  # default: packed
            }
        }
    )
    ids = {variant: tokenization_id(config, variant) for variant in config["variants"]}
    assert ids["r8"] == ids["r16"]  # LoRA rank and learning rate do not change the tokens
    assert len({ids["r8"], ids["short"], ids["unpacked"]}) == 3
    assert tokenization_settings(config, "short")["max_length"] == 128
