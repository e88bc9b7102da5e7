"""The schema is the one source of defaults, and config errors name the key."""

from pathlib import Path

import pytest
import yaml
from locallm.config import (
    load_config,
    run_name,
    tokenization_id,
    tokenization_settings,
    variant_settings,
    with_defaults,
    yaml_problems,
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


@pytest.mark.parametrize("name", ["config.yaml", "test.yaml", "smollm2.yaml"])
def test_shipped_configs_validate(name):
    config = load_config(ROOT / "config" / name)
    assert config["variants"]


def test_shipped_configs_name_their_own_results_folders():
    names = [load_config(ROOT / "config" / f)["name"] for f in ("config.yaml", "test.yaml")]
    names.append(load_config(ROOT / "config" / "smollm2.yaml")["name"])
    assert names == ["demo", "test", "smollm2"]


def test_run_name_is_the_configs_or_its_files_stem():
    assert run_name({"name": "study"}, ["config/other.yaml"]) == "study"
    assert run_name({"name": None}, ["config/config.yaml", "my_study.v2.yaml"]) == "my_study.v2"
    assert run_name({"name": None}, []) == "default"
    with pytest.raises(ValueError, match="my study.*set `name:`"):
        run_name({"name": None}, ["my study.yaml"])
    with pytest.raises(Exception, match="name"):
        with_defaults({"name": "../elsewhere"})  # the schema keeps it one folder


def test_variant_overrides_training_defaults_and_inherits_base():
    config = with_defaults({"variants": {"big": {"lora_r": 64}}, "model": {"base": "some/model"}})
    settings = variant_settings(config, "big")
    assert settings["lora_r"] == 64
    assert settings["base"] == "some/model"
    assert settings["method"] == config["training"]["method"]


def test_variant_with_unknown_key_fails_validation_naming_variant_and_key():
    with pytest.raises(ValueError, match=r"config key variants\.v: .*'lora_rank'"):
        with_defaults({"variants": {"v": {"lora_rank": 4}}})


def test_variant_with_wrong_type_fails_validation_naming_the_key():
    with pytest.raises(ValueError, match=r"config key variants\.v\.lora_r: 'eight'"):
        with_defaults({"variants": {"v": {"lora_r": "eight"}}})
    with pytest.raises(ValueError, match=r"config key variants\.v\.method: 'adapter'"):
        with_defaults({"variants": {"v": {"method": "adapter"}}})


def test_variant_may_set_the_base_with_the_model_sections_types():
    config = with_defaults({"variants": {"v": {"base": "some/model", "revision": "abc"}}})
    assert variant_settings(config, "v")["revision"] == "abc"
    with pytest.raises(ValueError, match=r"variants\.v\.trust_remote_code"):
        with_defaults({"variants": {"v": {"trust_remote_code": "yes"}}})


def test_variants_get_no_defaults_of_their_own():
    config = with_defaults({"variants": {"v": {"lora_r": 4}}})
    assert config["variants"]["v"] == {"lora_r": 4}  # training's defaults stay in `training`
    assert config["training"]["lora_r"] == 8


def test_unknown_training_key_is_still_rejected():
    with pytest.raises(ValueError, match=r"config key training: .*'lora_rank'"):
        with_defaults({"training": {"lora_rank": 4}})


def test_precision_and_batch_tokens_have_schema_defaults():
    config = with_defaults({})
    assert config["training"]["precision"] == "auto"
    assert config["inference"]["precision"] == "auto"
    assert config["inference"]["batch_tokens"] == 8192
    with pytest.raises(ValueError, match=r"variants\.v\.precision"):
        with_defaults({"variants": {"v": {"precision": "float16"}}})


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


def test_another_task_or_corpus_tokenizes_into_another_folder():
    # The pre-flight reads results/tokenized/<id>/lengths.tsv: another config's data must not
    # share the folder, or its longest example is shown as this config's.
    base = {"variants": {"v": {}}}
    first = tokenization_id(with_defaults(base), "v")
    assert tokenization_id(with_defaults({**base, "task": {"prompt": "Say: {text}"}}), "v") != first
    assert tokenization_id(with_defaults({**base, "corpus": {"chunk_chars": 99}}), "v") != first
    assert tokenization_id(with_defaults({**base, "training": {"lora_r": 64}}), "v") == first


def test_yaml_duplicate_keys_and_yaml11_booleans_are_named_with_line_and_fix(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text(
        "seed: 1\ncorpus:\n  fix_encoding: no\n  on: 2\n  encoding: 'yes'\nseed: 2\nok: true\n"
    )
    problems = yaml_problems(path)
    assert problems == [
        f"{path} line 3: 'no' is read as the boolean False (YAML 1.1); write false for a boolean, "
        "or quote it ('no') for the text",
        f"{path} line 4: 'on' is read as the boolean True (YAML 1.1); write true for a boolean, "
        "or quote it ('on') for the text",
        f"{path} line 6: key 'seed' appears again (first on line 1); YAML would keep only the "
        "last value: remove one of them",
    ]


@pytest.mark.parametrize("name", ["config.yaml", "test.yaml", "smollm2.yaml"])
def test_shipped_configs_have_no_duplicate_keys_or_yaml11_booleans(name):
    assert yaml_problems(ROOT / "config" / name) == []


def test_a_typo_in_lr_scheduler_type_is_named_with_the_allowed_values():
    with pytest.raises(ValueError, match=r"training\.lr_scheduler_type: 'cosin' is not one of"):
        with_defaults({"training": {"lr_scheduler_type": "cosin"}})


JSON_SCHEMA_WORDS = {
    "type", "description", "default", "enum", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "items", "properties", "additionalProperties", "$ref", "minItems",
    "maxItems", "pattern", "propertyNames", "minProperties", "unevaluatedProperties", "required",
    "oneOf", "anyOf", "allOf", "not", "const", "$defs", "$schema", "title", "uniqueItems",
    "minLength", "maxLength",
}  # fmt: skip


def test_no_schema_description_is_cut_at_a_comma_into_junk_keys():
    # `{type: string, description: a, b}` in YAML is a description "a" and a key "b".
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    junk = []

    def walk(node, path):
        if isinstance(node, dict):
            if "type" in node or "description" in node:
                leaf = path.rsplit(".", 1)[-1]
                if leaf not in ("properties", "$defs"):
                    junk.extend(f"{path}.{k}" for k in node if k not in JSON_SCHEMA_WORDS)
            for key, value in node.items():
                walk(value, f"{path}.{key}")

    walk(schema, "")
    assert junk == []
