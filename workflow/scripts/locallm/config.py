"""Load a config and fill in the schema's defaults outside Snakemake (tests, CLI tools, docs)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"
# What tokenized data depends on: tokenizer identity, chat template, length, packing.
TOKENIZATION_KEYS = (
    "base",
    "revision",
    "trust_remote_code",
    "cache_dir",
    "chat_template",
    "prompt_format",
    "completion_format",
    "max_length",
    "packing",
    "max_truncated_share",
    "truncation_error",
)


def _validator_with_defaults(schema: dict) -> jsonschema.protocols.Validator:
    """A validator that fills `default`s while it validates, as snakemake.utils.validate does."""
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, subschema):
        for name, prop in properties.items():
            if "default" in prop and isinstance(instance, dict):
                instance.setdefault(name, copy.deepcopy(prop["default"]))
        yield from validate_properties(validator, properties, instance, subschema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})(schema)


def with_defaults(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate `config` against the schema and return a copy with every default filled in."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    filled = copy.deepcopy(config or {})
    try:
        _validator_with_defaults(schema).validate(filled)
    except jsonschema.ValidationError as error:
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ValueError(f"config key {key}: {error.message}") from None
    return filled


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that notes duplicate keys and YAML 1.1 booleans instead of passing them."""

    def __init__(self, stream):
        super().__init__(stream)
        self.problems: list[tuple[int, str]] = []  # (line, problem)

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in seen:
                self.problems.append(
                    (
                        line,
                        f"key {key_node.value!r} appears again (first on line {seen[key]}); "
                        "YAML would keep only the last value: remove one of them",
                    )
                )
            seen.setdefault(key, line)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_bool(self, node):
        # YAML 1.1 (PyYAML, hence Snakemake) reads yes/no/on/off as booleans; YAML 1.2 and
        # people do not, so a key `on:` or a value `no` would silently change meaning.
        value = super().construct_yaml_bool(node)
        if node.value.lower() not in ("true", "false"):
            self.problems.append(
                (
                    node.start_mark.line + 1,
                    f"{node.value!r} is read as the boolean {value} (YAML 1.1); write "
                    f"{str(value).lower()} for a boolean, or quote it ('{node.value}') for the "
                    "text",
                )
            )
        return value


_StrictLoader.add_constructor("tag:yaml.org,2002:bool", _StrictLoader.construct_yaml_bool)


def yaml_problems(path: str | Path) -> list[str]:
    """Duplicate keys and YAML 1.1 booleans (yes/no/on/off) of a config file, each naming its line
    and the fix; Snakemake's own reading keeps the last duplicate and turns those words into
    booleans without a word."""
    loader = _StrictLoader(Path(path).read_text())
    try:
        loader.get_single_data()
    except yaml.YAMLError as error:
        return [f"{path}: not valid YAML ({error})"]
    finally:
        loader.dispose()
    return [f"{path} line {line}: {problem}" for line, problem in sorted(loader.problems)]


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and fill in defaults."""
    return with_defaults(yaml.safe_load(Path(path).read_text()) or {})


DEFAULT_NAME = "default"


# The schema's pattern of `name`: a folder name that needs no quoting anywhere.
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def run_name(config: dict[str, Any], config_files: list[str | Path]) -> str:
    """config `name`, or the stem of the last config file given (`default` without one)."""
    if config.get("name"):
        return config["name"]
    if not config_files:
        return DEFAULT_NAME
    stem = Path(config_files[-1]).stem
    if not RUN_NAME.fullmatch(stem):
        raise ValueError(
            f"config file {config_files[-1]}: its name {stem!r} cannot name the results folder "
            "(letters, digits, _ . - only); set `name:` in the config"
        )
    return stem


def canonical(value: Any) -> Any:
    """`value` with the keys of every mapping in it sorted (lists keep their order).

    Snakemake compares rule params by their repr, in which dict order shows: sorted, a config file
    with the same values in another order gives the same params and plans no job.
    """
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def variant_settings(config: dict[str, Any], variant: str) -> dict[str, Any]:
    """The training settings of one variant: `training` defaults overridden by the variant's keys.

    `base`, `revision` and `trust_remote_code` fall back to the `model` section.
    """
    if variant not in config["variants"]:
        allowed = ", ".join(sorted(config["variants"]))
        raise KeyError(f"unknown variant {variant!r}; config `variants` has: {allowed}")
    # The schema's $defs/training_options has already rejected unknown keys and wrong types.
    settings = {**config["training"], **config["variants"][variant]}
    for key in ("base", "revision", "trust_remote_code"):
        settings.setdefault(key, config["model"][key])
    return settings


def tokenization_settings(config: dict[str, Any], variant: str) -> dict[str, Any]:
    """The settings a variant's tokenized data depends on (TOKENIZATION_KEYS)."""
    settings = {**variant_settings(config, variant), "cache_dir": config["model"]["cache_dir"]}
    return {key: settings[key] for key in TOKENIZATION_KEYS}


# The config sections the training examples are built from (and the toy base's tokenizer, which
# bootstrap_base trains on the corpus): another corpus or task makes other tokenized data.
DATA_SECTIONS = ("seed", "corpus", "dedup", "cluster", "filter", "split", "task")


def tokenization_id(config: dict[str, Any], variant: str) -> str:
    """A digest of the variant's tokenization settings and of what its examples are built from:
    the folder of its tokenized data under results/tokenized/, shared by every variant of the
    config that tokenizes the same way.

    With the data sections in it, a config with another corpus or task gets its own folder, so
    that the pre-flight never reads another config's token lengths as this one's.
    """
    data = {key: config[key] for key in DATA_SECTIONS} | {"tiny": config["model"]["tiny"]}
    settings = json.dumps([tokenization_settings(config, variant), data], sort_keys=True)
    return hashlib.sha256(settings.encode()).hexdigest()[:12]


def _properties(schema: dict, root: dict) -> dict[str, dict]:
    """The options of `schema`, each merged with its shared definition (`$ref` into `$defs`)."""
    shared = {}
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        shared = root["$defs"][name].get("properties", {})
    own = schema.get("properties", {})
    return {name: {**shared.get(name, {}), **own.get(name, {})} for name in {**shared, **own}}


def _rows(schema: dict, prefix: str = "", root: dict | None = None) -> list[tuple[str, str, str]]:
    """(key, default, description) for every option of `schema`, depth first."""
    root = root or schema
    rows = []
    for name, prop in _properties(schema, root).items():
        key = f"{prefix}{name}"
        default = prop.get("default", "")
        if not (isinstance(default, dict) and prop.get("properties")):
            shown = "" if "default" not in prop else f"`{json.dumps(default)}`"
            description = " ".join(prop.get("description", "").split())
            if "enum" in prop:
                description += f" One of: {', '.join(f'`{v}`' for v in prop['enum'])}."
            rows.append((key, shown, description.strip()))
        else:
            rows.append((key, "", " ".join(prop.get("description", "").split())))
        rows.extend(_rows(prop, prefix=f"{key}.", root=root))
    return rows


def options_markdown() -> str:
    """config/README.md, generated from the schema so that the two never disagree."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    lines = [
        "# Configuration",
        "",
        "Generated from `workflow/schemas/config.schema.yaml` by `python -m locallm.config`",
        "(run from `workflow/scripts`); a test fails when the two differ. Snakemake validates the",
        "config against that schema and fills in these defaults. `config/config.yaml` is the demo,",
        "`config/test.yaml` the tiny CI run; pass your own with `--configfile my.yaml`.",
        "",
        "| option | default | meaning |",
        "|---|---|---|",
    ]
    for key, default, description in _rows(schema):
        lines.append(f"| `{key}` | {default} | {description.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(options_markdown(), end="")
