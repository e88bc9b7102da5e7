"""Config problems found before any job runs: unit checks, and one dry run that stops on them."""

import pytest
import yaml
from conftest import ROOT, copy_workflow, snakemake
from locallm.config import load_config, with_defaults
from locallm.config_checks import config_problems

TEST_CONFIG = ROOT / "config" / "test.yaml"


def raw_test_config() -> dict:
    """config/test.yaml as written, less its annotate section: it names a variant and a metadata
    column that the tests here replace (annotate's own checks: tests/test_annotate.py)."""
    raw = yaml.safe_load(TEST_CONFIG.read_text())
    raw.pop("annotate", None)
    return raw


def problems(**sections) -> list[str]:
    """The problems of config/test.yaml with `sections` merged over its sections."""
    raw = raw_test_config()
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return config_problems(with_defaults(raw))


def test_the_shipped_configs_have_no_problems():
    assert config_problems(load_config(TEST_CONFIG)) == []
    assert config_problems(load_config(ROOT / "config" / "config.yaml")) == []


@pytest.mark.parametrize(
    ("prompt", "words"),
    [
        ("Which party is this?", "has no {text}: the model would never see the document"),
        ("Party ({party})? {text}", "contains {party}, the task.label_column"),
        ("Party? {}", "positional field(s) {}; name a column instead, e.g. {text}"),
        ("Party? {0} {text}", "positional field(s) {0}"),
        ("Party? {text", "is not a valid template"),
    ],
)
def test_a_prompt_that_cannot_work_is_named_with_its_fix(prompt, words):
    found = problems(task={"prompt": prompt})
    assert len(found) == 1 and found[0].startswith("config task.prompt")
    assert words in found[0]


def test_the_target_column_of_a_generate_task_must_not_be_in_the_prompt():
    found = problems(
        task={"kind": "generate", "target_column": "president", "prompt": "{text} {president}"}
    )
    assert found == [
        "config task.prompt contains {president}, the task.target_column: the answer would be "
        "in the question; remove it from the prompt"
    ]


def test_split_fractions_that_do_not_sum_to_one():
    found = problems(split={"train": 0.8, "validation": 0.3, "test": 0.1})
    assert found == [
        "config split.train 0.8 + split.validation 0.3 + split.test 0.1 = 1.2; "
        "the three fractions must sum to 1"
    ]


def test_perplexity_without_a_validation_split():
    found = problems(split={"train": 0.9, "validation": 0, "test": 0.1})
    assert len(found) == 1 and "evaluation.perplexity needs a validation split" in found[0]


def test_a_preference_file_source_without_a_path():
    found = problems(task={"preferences": {"source": "file"}})
    assert len(found) == 1
    assert found[0].startswith("config task.preferences.source is `file` but task.preferences.path")


def test_labels_that_collide_under_label_normalize():
    found = problems(task={"labels": ["Pro", "pro "], "label_normalize": True})
    assert found == [
        "config task.labels 'Pro' and 'pro ' are the same label under task.label_normalize; "
        "keep one, or set task.label_normalize: false"
    ]


def test_a_glob_matching_nothing_among_several(tmp_path):
    (tmp_path / "a.csv").write_text("text\nx\n")
    patterns = [str(tmp_path / "*.csv"), str(tmp_path / "*.jsnol")]
    found = problems(corpus={"source": "files", "paths": patterns})
    assert len(found) == 1 and f"'{tmp_path}/*.jsnol' matches no file" in found[0]


def test_every_problem_is_reported_at_once():
    found = problems(
        task={"prompt": "{party}", "preferences": {"source": "file"}},
        split={"train": 0.5},
    )
    assert len(found) == 4


def test_a_bad_prompt_stops_the_run_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path)
    config = workdir / "config" / "test.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["task"]["prompt"] = "Which party? {party}"
    config.write_text(yaml.safe_dump(raw))
    result = snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "invalid config:" in output
    assert "config task.prompt 'Which party? {party}' has no {text}" in output
    assert "contains {party}, the task.label_column" in output
    assert not (workdir / "results").exists()


@pytest.mark.parametrize(
    ("metric", "threshold", "fine"),
    [
        ("macro_f1", 70, False),
        ("accuracy", -0.1, False),
        ("accuracy", 0.7, True),
        ("cohen_kappa", -0.2, True),
        ("cohen_kappa", -5, False),
    ],
)
def test_a_good_enough_threshold_outside_its_metric_range_is_named(metric, threshold, fine):
    good_enough = {"metric": metric, "threshold": threshold}
    raw = raw_test_config()
    raw.setdefault("evaluation", {})["good_enough"] = good_enough
    if fine:
        assert config_problems(with_defaults(raw)) == []
        return
    try:
        config = with_defaults(raw)
    except ValueError as error:  # the schema bounds every metric to [-1, 1]
        assert "evaluation.good_enough.threshold" in str(error)
        return
    assert config_problems(config) == [
        f"config evaluation.good_enough.threshold {threshold} is outside [0, 1], the range of "
        f"{metric}; write a share (0.70 for 70%)"
    ]


def test_a_prompt_field_reading_an_attribute_or_item_is_named():
    found = problems(task={"prompt": "{text.__class__} {text[0]} {text}"})
    assert found == [
        "config task.prompt field(s) {text.__class__}, {text[0]} read an attribute or item of a "
        "value; use plain column names like {text}"
    ]


def test_a_prompt_field_that_is_no_column_is_named_with_the_brace_hint():
    found = problems(task={"prompt": 'Answer as {"label": ...} {text}'})
    assert len(found) == 1
    assert found[0].startswith('config task.prompt field {"label"} is no column')
    assert 'or write {{"label"}} for literal braces' in found[0]
    assert problems(task={"prompt": "{president} said: {text}"}) == []


def test_a_base_in_an_existing_folder_that_does_not_exist_is_not_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    found = problems(model={"base": "models/mine"})
    assert len(found) == 1
    assert found[0].startswith("config base 'models/mine': no such folder")
    assert "models/ exists here, so it is not taken for a Hub id" in found[0]
    (tmp_path / "models" / "mine").mkdir()
    assert problems(model={"base": "models/mine"}) == []
    assert problems(model={"base": "HuggingFaceTB/SmolLM2-135M"}) == []


@pytest.mark.parametrize("name", ["base", "converted", "fetched"])
def test_a_variant_named_like_a_workflow_folder_is_named_with_the_fix(name):
    raw = raw_test_config()
    raw["variants"] = {name: {}}
    assert config_problems(with_defaults(raw)) == [
        f"config variants.{name}: {name!r} is a folder the workflow writes under "
        "results/NAME/models/ (reserved: base, converted, fetched); give the variant another name"
    ]


@pytest.mark.parametrize("content", [b"not a gguf at all", b"GGUF\x03\x00\x00\x00"])
def test_a_bogus_or_truncated_gguf_base_is_one_line_naming_it(tmp_path, content):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(content)
    found = problems(model={"base": str(gguf)})
    assert len(found) == 1
    assert found[0].startswith(f"GGUF base {gguf}: not a readable GGUF file (")
    assert found[0].endswith("it may be truncated or another format: download or copy it again")


def files_config(tmp_path, files: dict[str, str], **corpus) -> dict:
    """config/test.yaml reading `files` (name: content) from tmp_path, with these corpus keys."""
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    raw = raw_test_config()
    raw["corpus"] = {
        "source": "files",
        "paths": [str(tmp_path / "*")],
        "metadata_columns": [],
        **corpus,
    }
    raw["task"] = {**raw["task"], "label_column": None, "labels": []}
    raw["split"] = {**raw.get("split", {}), "stratify_by": None}
    return with_defaults(raw)


def test_an_unknown_corpus_encoding_is_named_at_dag_time(tmp_path):
    config = files_config(tmp_path, {"a.csv": "text\nx\n"}, encoding="utf-9")
    assert config_problems(config) == [
        "config corpus.encoding: 'utf-9' is not an encoding Python knows "
        "(e.g. utf-8, latin-1, cp1252)"
    ]


def test_a_csv_header_naming_a_column_twice_is_named_at_dag_time(tmp_path):
    config = files_config(tmp_path, {"a.csv": "text,year,year\nx,1,2\n"})
    assert config_problems(config) == [
        f"corpus file {tmp_path}/a.csv line 1: column(s) ['year'] appear twice in the header; "
        "rename or remove one"
    ]


def test_a_derived_column_from_a_misspelled_column_is_named_at_dag_time(tmp_path):
    derived = {"era": {"from": "yaer", "bins": [1700, 1900, 2100], "labels": ["old", "new"]}}
    config = files_config(
        tmp_path,
        {"a.csv": "text,year\nx,1800\n", "b.jsonl": '{"text": "y", "year": 1950}\n'},
        derived_columns=derived,
    )
    assert config_problems(config) == [
        "config corpus.derived_columns.era.from: column 'yaer' is in no corpus file "
        "(they have: text, year); fix the name"
    ]
    derived["era"]["from"] = "year"
    assert config_problems(files_config(tmp_path, {}, derived_columns=derived)) == []
