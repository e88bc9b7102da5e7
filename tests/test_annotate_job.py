"""The annotate job on a tiny saved model: resume mid-shard with no row lost or repeated, and the
same predictions as the infer job's path."""

import json

import pandas as pd
import pytest
from locallm.annotate.job import annotate_shard
from locallm.config import with_defaults
from locallm.infer import predict as predict_module
from locallm.tables import write_table
from test_inference import TASK, TEXTS, rows_of, tiny_llama, tiny_tokenizer


@pytest.fixture(scope="module")
def saved_base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("base")
    tokenizer = tiny_tokenizer()
    tiny_llama(tokenizer, seed=4).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def job_arguments(tmp_path, base, output):
    table = pd.DataFrame(rows_of(TEXTS * 5))  # 20 rows
    write_table(table, tmp_path / "input.parquet")
    choice = {"variant": "v", "stage": "base", "chosen_by": "named", "good_enough": None}
    (tmp_path / "choice.json").write_text(json.dumps(choice))
    settings = dict(with_defaults({"inference": {"max_cut_share": 1.0}})["inference"])
    defaults = with_defaults()["training"]
    model = {"base": str(base), "method": "lora", "trust_remote_code": False}
    # How prompts are rendered: the schema's defaults (a model with a chat template keeps it).
    model |= {k: defaults[k] for k in ("chat_template", "prompt_format", "completion_format")}
    return dict(
        table=tmp_path / "input.parquet", choice=tmp_path / "choice.json", output=output,
        partial_dir=tmp_path / "partial" / output.stem, shard=1, shards=2, chunk_rows=3,
        settings=settings, task=TASK, models={"v/base": {"model": model, "base": None,
        "adapter": None}}, seed=0, repo=tmp_path,
    )  # fmt: skip


def test_a_killed_job_resumes_mid_shard_with_no_row_lost_or_repeated(
    tmp_path, saved_base, monkeypatch
):
    clean = tmp_path / "clean.parquet"
    annotate_shard(**job_arguments(tmp_path, saved_base, clean))
    expected = pd.read_parquet(clean)
    # Shard 1 of 2 over 20 rows: the odd rows, in input order, in 4 chunks of 3 (the last of 1).
    assert expected["doc_id"].tolist() == [f"t{i}" for i in range(1, 20, 2)]

    real = predict_module.predict_rows
    calls = []

    def dies_on_the_third_chunk(*args, **kwargs):
        calls.append(len(args[2]))
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(predict_module, "predict_rows", dies_on_the_third_chunk)
    resumed = tmp_path / "resumed.parquet"
    arguments = job_arguments(tmp_path, saved_base, resumed)
    with pytest.raises(KeyboardInterrupt):
        annotate_shard(**arguments)
    assert not resumed.exists()
    assert len(list(arguments["partial_dir"].glob("chunk_*.parquet"))) == 2
    calls.clear()
    annotate_shard(**arguments)
    # The rerun predicted only the two chunks the killed job had not finished (3 rows and 1).
    assert calls == [3, 1]
    table = pd.read_parquet(resumed)
    assert table["doc_id"].tolist() == expected["doc_id"].tolist()
    pd.testing.assert_frame_equal(
        table.drop(columns=["code_version"]), expected.drop(columns=["code_version"])
    )
    assert not arguments["partial_dir"].exists()  # chunks removed once the shard is written


def test_a_chunk_made_under_other_settings_is_redone(tmp_path, saved_base, monkeypatch):
    output = tmp_path / "out.parquet"
    arguments = job_arguments(tmp_path, saved_base, output)
    real = predict_module.predict_rows
    calls = []

    def stops_after_one_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(predict_module, "predict_rows", stops_after_one_chunk)
    with pytest.raises(KeyboardInterrupt):
        annotate_shard(**arguments)
    calls.clear()
    monkeypatch.setattr(
        predict_module, "predict_rows", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    annotate_shard(**{**arguments, "seed": 1})  # another seed: another run key
    assert len(calls) == 4


def test_annotations_record_model_stage_precision_and_label_probabilities(tmp_path, saved_base):
    output = tmp_path / "out.parquet"
    annotate_shard(**job_arguments(tmp_path, saved_base, output))
    table = pd.read_parquet(output)
    labels = TASK["labels"]
    probs = table[[f"prob_{label}" for label in labels]]
    assert probs.sum(axis=1).round(6).eq(1).all()
    assert (table["confidence"] == probs.max(axis=1)).all()
    assert table["predicted_label"].isin(labels).all()
    assert set(table["variant"]) == {"v"} and set(table["stage"]) == {"base"}
    assert set(table["gen_precision"]) == {"float32"} and set(table["engine"]) == {"transformers"}
    assert set(table["code_version"]) == {"unknown"}  # tmp_path is no git repository
