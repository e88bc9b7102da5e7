"""SFT and DPO on a tiny model the test saves: outputs, 4-bit QLoRA, resume, DPO reference."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from locallm.config import with_defaults
from locallm.model.loading import load_stage_model
from locallm.model.tiny import save_base, tiny_model, train_tokenizer
from locallm.tables import write_table
from locallm.task.prompts import preferences_from_labels, sft_table
from locallm.train import launch, training
from locallm.train.tokenization import tokenize_splits
from locallm.train.training import preference_dataset, train_dpo, train_sft
from transformers import AutoTokenizer, TrainerCallback

WORDS = {"Democratic": "harvest river", "Republican": "granite market"}
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_layers": 2,
    "num_heads": 4,
    "context_length": 128,
}


def config(**training) -> dict:
    return with_defaults(
        {
            "task": {
                "prompt": "Party? {text}",
                "label_column": "party",
                "labels": ["Democratic", "Republican"],
            },
            "training": {
                "max_length": 64,
                "max_steps": 6,
                "per_device_batch_size": 4,
                "learning_rate": 0.005,
                "logging_steps": 1,
                "save_steps": 2,
                "lora_r": 4,
                "dpo_max_steps": 4,
                "dpo_learning_rate": 0.005,
                **training,
            },
        }
    )


def settings(cfg: dict, base: str) -> dict:
    return {**cfg["training"], "base": base, "revision": None, "trust_remote_code": False}


def docs(n: int = 32) -> pd.DataFrame:
    labels = ["Democratic", "Republican"] * (n // 2)
    return pd.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(n)],
            "group_id": [f"g{i}" for i in range(n)],
            "text": [f"{WORDS[label]} number {i}" for i, label in enumerate(labels)],
            "party": labels,
        }
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A saved tiny base, SFT and preference tables for a task a tiny model can learn."""
    root = tmp_path_factory.mktemp("training")
    cfg = config()
    texts = docs().text.tolist() + list(WORDS) * 10
    tokenizer = train_tokenizer(texts, vocab_size=300)
    save_base(tiny_model(tokenizer, TINY, seed=0), tokenizer, root / "base")
    write_table(sft_table(docs(), cfg["task"]), root / "sft_train.parquet")
    write_table(preferences_from_labels(docs(), cfg["task"], 0), root / "pref_train.parquet")
    return root


def tokenize(root: Path, cfg: dict, name: str = "tokenized") -> str:
    out = root / name
    if not out.exists():
        tokenize_splits(
            {"train": str(root / "sft_train.parquet")},
            str(root / "base"),
            settings(cfg, str(root / "base")),
            str(out),
            str(root / f"{name}.tsv"),
            str(root / f"{name}.png"),
        )
    return str(out)


def read_log(stage: Path) -> pd.DataFrame:
    return pd.read_csv(stage / "train_log.tsv", sep="\t")


def test_tokenize_writes_a_dataset_and_a_length_report(workspace):
    cfg = config()
    tokenize(workspace, cfg)
    report = pd.read_csv(workspace / "tokenized.tsv", sep="\t")
    assert report.loc[0, "examples"] == 32
    assert report.loc[0, "truncated"] == 0
    assert report.loc[0, "context_length"] == 128
    assert (workspace / "tokenized" / "train" / "dataset_info.json").exists()


def tiny_base_model(root: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(root / "base")


@pytest.fixture(scope="module")
def qlora_sft(workspace) -> Path:
    """A QLoRA SFT stage trained for 6 steps."""
    cfg = config()
    out = workspace / "qlora_sft"
    train_sft(
        tokenize(workspace, cfg),
        str(workspace / "base"),
        settings(cfg, str(workspace / "base")),
        str(out),
        str(workspace / "ckpt" / "qlora"),
        seed=1,
        threads=1,
    )
    return out


def test_qlora_sft_trains_a_4bit_adapter_and_writes_its_outputs(workspace, qlora_sft):
    cfg = config()
    out = qlora_sft
    info = json.loads((out / "run_info.json").read_text())
    assert info["linear_4bit_layers"] == 14
    # Every weight of the base, counted unpacked (not the 4-bit storage), plus the adapters.
    base = sum(p.numel() for p in tiny_base_model(workspace).parameters())
    assert info["total_parameters"] == base + info["trainable_parameters"]
    assert info["steps"] == 6
    assert info["tokens"] > 0 and info["tokens_per_s"] > 0
    assert (out / "adapter_model.safetensors").exists()
    assert (out / "loss.png").exists()
    history = read_log(out)
    assert history.step.tolist() == [1, 2, 3, 4, 5, 6]
    assert {"loss", "learning_rate", "grad_norm", "tokens"} <= set(history.columns)
    model, _ = load_stage_model(
        settings(cfg, str(workspace / "base")), str(workspace / "base"), str(out)
    )
    assert type(model).__name__.startswith("PeftModel")


class Interrupted(Exception):
    """The run was stopped from outside (as a time limit would), before writing its output."""


class InterruptAt(TrainerCallback):
    """Stops a run with Interrupted once it reached `step`."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            raise Interrupted(f"step {state.global_step}")


def test_sft_resumes_from_the_newest_checkpoint_and_continues_the_step_count(workspace):
    cfg = config(method="lora")
    args = dict(
        tokenized=tokenize(workspace, cfg),
        base_path=str(workspace / "base"),
        settings=settings(cfg, str(workspace / "base")),
        output=str(workspace / "lora_sft"),
        checkpoints=str(workspace / "ckpt" / "lora"),
        seed=1,
        threads=1,
    )
    with pytest.raises(Interrupted):
        train_sft(**args, callbacks=[InterruptAt(3)])  # after the checkpoint at step 2
    assert not Path(args["output"]).exists()
    assert (Path(args["checkpoints"]) / "checkpoint-2").exists()
    train_sft(**args)
    info = json.loads((Path(args["output"]) / "run_info.json").read_text())
    assert info["resumed_from"].endswith("checkpoint-2")
    assert info["steps"] == 6
    assert read_log(Path(args["output"])).step.tolist() == [1, 2, 3, 4, 5, 6]


def adapter_difference(first: Path, second: Path) -> float:
    """The largest absolute difference between two saved adapters' weights."""
    from safetensors.torch import load_file

    a = load_file(first / "adapter_model.safetensors")
    b = load_file(second / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_resumed_lora_and_qlora_training_is_bit_identical_to_an_uninterrupted_run(
    workspace, qlora_sft
):
    # The trainer restores the optimizer, scheduler, every RNG and the data order. QLoRA also needs
    # its adapters back in the bfloat16 TRL trains them in (checkpoints.keep_trained_dtypes): loaded
    # as float32, a resumed run differed by 1.1e-3 here, 6.5e-3 for SmolLM2 (issue 21).
    for method, straight in (("lora", None), ("qlora", qlora_sft)):
        cfg = config(method=method)
        base = str(workspace / "base")
        args = dict(
            tokenized=tokenize(workspace, cfg),
            base_path=base,
            settings=settings(cfg, base),
            seed=1,
            threads=1,
        )
        if straight is None:
            straight = workspace / f"straight_{method}"
            train_sft(**args, output=str(straight), checkpoints=str(workspace / "ckpt" / "s"))
        resumed = workspace / f"resumed_{method}"
        checkpoints = str(workspace / "ckpt" / f"resumed_{method}")
        with pytest.raises(Interrupted):
            train_sft(
                **args, output=str(resumed), checkpoints=checkpoints, callbacks=[InterruptAt(3)]
            )
        train_sft(**args, output=str(resumed), checkpoints=checkpoints)
        difference = adapter_difference(straight, resumed)
        losses = (read_log(straight).loss - read_log(resumed).loss).abs().max()
        assert difference == 0.0 and losses == 0.0, method


def test_resumed_qlora_dpo_is_bit_identical_to_an_uninterrupted_run(workspace, qlora_sft):
    # The same restore as SFT's (optimizer, scheduler, RNGs, data order, bf16 adapters), through
    # TRL's DPOTrainer and its frozen reference adapter.
    cfg = config(dpo_max_steps=4, save_steps=2)
    base = str(workspace / "base")
    args = dict(
        sft=str(qlora_sft),
        preferences=str(workspace / "pref_train.parquet"),
        base_path=base,
        settings=settings(cfg, base),
        seed=1,
        threads=1,
    )
    straight, resumed = workspace / "dpo_straight", workspace / "dpo_resumed"
    train_dpo(**args, output=str(straight), checkpoints=str(workspace / "ckpt" / "dpo_straight"))
    checkpoints = str(workspace / "ckpt" / "dpo_resumed")
    with pytest.raises(Interrupted):
        train_dpo(**args, output=str(resumed), checkpoints=checkpoints, callbacks=[InterruptAt(3)])
    train_dpo(**args, output=str(resumed), checkpoints=checkpoints)
    assert len(read_log(resumed)) == len(read_log(straight))
    assert adapter_difference(straight, resumed) == 0.0


class InterruptAtEnd(TrainerCallback):
    """Stops a run after its last checkpoint, before the stage folder is written."""

    def on_train_end(self, args, state, control, **kwargs):
        raise Interrupted("after the last checkpoint")


def test_a_run_killed_after_its_last_checkpoint_resumes_without_an_extra_step(workspace):
    # 7 steps end mid-epoch: transformers, resumed at step 7, used to train an 8th.
    cfg = config(method="lora", max_steps=7, save_steps=7)
    base = str(workspace / "base")
    checkpoints = workspace / "ckpt" / "at_end"
    args = dict(
        tokenized=tokenize(workspace, cfg),
        base_path=base,
        settings=settings(cfg, base),
        output=str(workspace / "at_end"),
        checkpoints=str(checkpoints),
        seed=1,
        threads=1,
    )
    with pytest.raises(Interrupted):
        train_sft(**args, callbacks=[InterruptAtEnd()])
    train_sft(**args)
    info = json.loads((workspace / "at_end" / "run_info.json").read_text())
    assert info["resumed_from"] == str(checkpoints / "checkpoint-7")
    assert info["steps"] == 7
    assert read_log(workspace / "at_end").step.tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert adapter_difference(checkpoints / "checkpoint-7", workspace / "at_end") == 0.0


KILL_WHILE_SAVING = """
import json, os, signal, sys
from transformers import Trainer
from locallm.train import launch
from locallm.train import training

save = Trainer._save_optimizer_and_scheduler


def save_then_die(self, output_dir):
    save(self, output_dir)
    if self.state.global_step == {kill_at}:
        # Model and optimizer are written, trainer_state.json not yet: a kill mid-save.
        os.kill(os.getpid(), signal.SIGKILL)


Trainer._save_optimizer_and_scheduler = save_then_die
getattr(training, sys.argv[1])(**json.loads(sys.argv[2]))
"""


def kill_while_saving(function: str, kill_at: int, **kwargs) -> None:
    """Run training.<function> in a real process that SIGKILLs itself while saving a checkpoint."""
    import signal
    import subprocess
    import sys

    script = KILL_WHILE_SAVING.format(kill_at=kill_at)
    result = subprocess.run(
        [sys.executable, "-c", script, function, json.dumps(kwargs)], capture_output=True, text=True
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_a_kill_while_saving_a_checkpoint_resumes_from_the_newest_complete_one(
    workspace, qlora_sft, stage
):
    cfg = config(method="lora", dpo_max_steps=6)
    base = str(workspace / "base")
    checkpoints = workspace / "ckpt" / f"killed_{stage}"
    args = dict(
        base_path=base,
        settings=settings(cfg, base),
        output=str(workspace / f"killed_{stage}"),
        checkpoints=str(checkpoints),
        seed=1,
        threads=1,
    )
    if stage == "sft":
        function, args["tokenized"] = "train_sft", tokenize(workspace, cfg)
    else:
        # The QLoRA SFT adapter loads on a LoRA (unquantized) base as well.
        function, args["sft"] = "train_dpo", str(qlora_sft)
        args["preferences"] = str(workspace / "pref_train.parquet")
    kill_while_saving(function, kill_at=4, **args)
    assert (checkpoints / "checkpoint-2" / "complete.json").exists()
    assert (checkpoints / "checkpoint-4").exists()
    assert not (checkpoints / "checkpoint-4" / "trainer_state.json").exists()

    getattr(training, function)(**args)  # the rerun, with no hand in between

    info = json.loads((Path(args["output"]) / "run_info.json").read_text())
    assert info["resumed_from"] == str(checkpoints / "checkpoint-2")
    assert info["steps"] == 6
    assert [p.name[: len("checkpoint-4")] for p in (checkpoints / "incomplete").iterdir()] == [
        "checkpoint-4"
    ]


def test_full_sft_learns_the_task_and_dpo_prefers_chosen_answers(workspace):
    cfg = config(method="full", max_steps=30, learning_rate=0.003)
    base = str(workspace / "base")
    sft_dir, dpo_dir = workspace / "full_sft", workspace / "full_dpo"
    train_sft(
        tokenize(workspace, cfg),
        base,
        settings(cfg, base),
        str(sft_dir),
        str(workspace / "ckpt" / "full_sft"),
        seed=1,
        threads=1,
    )
    history = read_log(sft_dir)
    assert history.loss.iloc[-3:].mean() < history.loss.iloc[:3].mean()
    train_dpo(
        str(sft_dir),
        str(workspace / "pref_train.parquet"),
        base,
        settings(cfg, base),
        str(dpo_dir),
        str(workspace / "ckpt" / "full_dpo"),
        seed=1,
        threads=1,
    )
    dpo_log = read_log(dpo_dir)
    assert {"reward_accuracy", "reward_margin"} <= set(dpo_log.columns)
    assert (dpo_dir / "model.safetensors").exists()


def test_dpo_reference_is_the_sft_adapter_not_the_base(workspace, qlora_sft):
    """At the first step the policy is the SFT adapter and so is the reference: rewards are 0."""
    cfg = config(dpo_max_steps=1)
    base = str(workspace / "base")
    out = workspace / "qlora_dpo"
    train_dpo(
        str(qlora_sft),
        str(workspace / "pref_train.parquet"),
        base,
        settings(cfg, base),
        str(out),
        str(workspace / "ckpt" / "qlora_dpo"),
        seed=1,
        threads=1,
    )
    first = read_log(out).iloc[0]
    # Had the base been the reference, the rewards would be beta times this gap.
    model, tokenizer = load_stage_model(settings(cfg, base), base, str(qlora_sft))
    ids = tokenizer.apply_chat_template(
        [
            {"role": "user", "content": "Party? harvest river"},
            {"role": "assistant", "content": "Democratic"},
        ],
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.no_grad():
        sft_loss = model(input_ids=ids, labels=ids).loss
        with model.disable_adapter():
            base_loss = model(input_ids=ids, labels=ids).loss
    gap = cfg["training"]["dpo_beta"] * abs(sft_loss - base_loss).item() * ids.shape[1]
    assert gap > 0.01
    assert abs(first.reward_chosen) < gap / 10
    assert abs(first.reward_rejected) < gap / 10
    saved = json.loads((out / "adapter_config.json").read_text())
    assert saved["r"] == 4
    assert not (out / "ref").exists()


def test_preference_prompts_are_cut_to_fit_and_keep_their_answers(workspace):
    tokenizer = AutoTokenizer.from_pretrained(workspace / "base")
    pairs = preference_dataset(str(workspace / "pref_train.parquet"), tokenizer, max_length=24)
    prompt = tokenizer.apply_chat_template(pairs[0]["prompt"], tokenize=False)
    assert pairs[0]["chosen"][0]["content"] in ("Democratic", "Republican")
    assert len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) < 24
    assert prompt.startswith("<|user|>Party?")


def test_sft_runs_as_two_ddp_processes_on_the_cpu(workspace):
    from locallm.train.launch import run_stage

    cfg = config(method="lora", max_steps=2, save_steps=2)
    out = workspace / "ddp_sft"
    run_stage(
        "sft",
        num_processes=2,
        tokenized=tokenize(workspace, cfg),
        base_path=str(workspace / "base"),
        settings=settings(cfg, str(workspace / "base")),
        output=str(out),
        checkpoints=str(workspace / "ckpt" / "ddp"),
        seed=1,
        threads=2,
    )
    info = json.loads((out / "run_info.json").read_text())
    assert info["world_size"] == 2
    assert info["steps"] == 2
    assert (out / "adapter_model.safetensors").exists()


def test_merge_folds_the_adapter_into_a_full_precision_base(workspace, qlora_sft):
    from locallm.train.training import merge_stage

    cfg = config()
    base = str(workspace / "base")
    merge_stage(str(qlora_sft), base, settings(cfg, base), str(workspace / "merged"))
    merged, tokenizer = load_stage_model(settings(config(method="full"), base), base, None)
    merged = type(merged).from_pretrained(workspace / "merged")
    assert merged.dtype == torch.float32
    # The same adapter on the unquantized base gives the merged model's logits.
    adapted, _ = load_stage_model(settings(config(method="lora"), base), base, str(qlora_sft))
    ids = tokenizer("harvest river number 3", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapted(ids).logits, atol=1e-4, rtol=1e-4)


def stage_run(**training_settings) -> training.StageRun:
    settings = with_defaults({"training": training_settings})["training"]
    return training.StageRun("sft", settings, "base", "base", "ckpt", 1, None, "float32")


def test_a_run_shorter_than_logging_steps_still_logs_every_step():
    # Logging at step 8 only would plot one point (issue 21): 8 steps log a row each.
    args = stage_run(logging_steps=10).trainer_args(max_steps=8)
    assert args["max_steps"] == 8
    assert args["logging_steps"] == 1


def test_gradient_checkpointing_is_what_the_config_says_not_trls_default():
    from trl import SFTConfig

    for wanted in (False, True):
        args = SFTConfig(**stage_run(gradient_checkpointing=wanted).trainer_args(max_steps=2))
        assert args.activation_checkpointing is wanted
        assert args.gradient_checkpointing is wanted  # what TRL's trainers read


def test_each_stage_declares_its_run_key_inputs_among_its_arguments():
    import inspect

    for stage, function in launch.STAGES.items():
        assert set(training.RUN_KEY_INPUTS[stage]) <= set(inspect.signature(function).parameters)


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_precision_on_the_cpu_is_float32_even_with_bf16_instructions(monkeypatch, has_bf16):
    # Measured on SmolLM2: bf16 autocast is faster on such a CPU but QLoRA learned less with it.
    monkeypatch.setattr(training, "on_gpu", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: has_bf16)
    for method in ("full", "lora", "qlora"):
        settings = {"precision": "auto", "method": method}
        assert training.training_precision(settings) == "float32"
        for precision in ("float32", "bfloat16"):  # an explicit choice is kept
            assert training.training_precision({**settings, "precision": precision}) == precision


class MatmulDtypes(TrainerCallback):
    """Records the output dtype of the model's first 16/32-bit linear layer (a LoRA matrix for
    QLoRA) at every training forward, and the compute dtype of its 4-bit layers."""

    def __init__(self):
        self.seen, self.four_bit = set(), set()

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        import bitsandbytes as bnb

        linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        plain = next(m for m in linears if not isinstance(m, bnb.nn.Linear4bit))
        plain.register_forward_hook(lambda module, inputs, out: self.seen.add(out.dtype))
        self.four_bit = {m.compute_dtype for m in linears if isinstance(m, bnb.nn.Linear4bit)}


@pytest.mark.parametrize(
    "method, precision, matmul",
    [
        ("full", "bfloat16", torch.bfloat16),
        ("qlora", "bfloat16", torch.bfloat16),
        ("full", "float32", torch.float32),
    ],
)
def test_training_precision_is_autocast_in_bf16_and_plain_float32_otherwise(
    workspace, method, precision, matmul
):
    cfg = config(method=method, max_steps=3, save_steps=10, precision=precision)
    base = str(workspace / "base")
    out = workspace / f"{method}_{precision}"
    dtypes = MatmulDtypes()
    train_sft(
        tokenize(workspace, cfg),
        base,
        settings(cfg, base),
        str(out),
        str(workspace / "ckpt" / f"{method}_{precision}"),
        seed=1,
        threads=1,
        callbacks=[dtypes],
    )
    info = json.loads((out / "run_info.json").read_text())
    assert info["precision"] == precision and info["steps"] == 3
    assert info["gradient_checkpointing"] is False
    assert dtypes.seen == {matmul}
    assert read_log(out).loss.map(math.isfinite).all()
    if method == "full":  # autocast trains float32 weights, whatever the precision
        model, _ = load_stage_model(settings(cfg, base), base, str(out))
        assert {p.dtype for p in model.parameters()} == {torch.float32}
    else:
        assert info["linear_4bit_layers"] == 14
        assert dtypes.four_bit == {matmul}


def test_training_logs_progress_lines_not_raw_dicts(workspace, caplog, capsys):
    import logging

    cfg = config(method="lora", max_steps=2, save_steps=2)
    base = str(workspace / "base")
    with caplog.at_level(logging.INFO):
        train_sft(
            tokenize(workspace, cfg),
            base,
            settings(cfg, base),
            str(workspace / "progress_sft"),
            str(workspace / "ckpt" / "progress"),
            seed=1,
            threads=1,
        )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sft step")]
    assert [line.split(",")[0] for line in lines] == ["sft step 1/2 (50%)", "sft step 2/2 (100%)"]
    assert "left" in lines[0]
    assert "{'loss'" not in capsys.readouterr().out
