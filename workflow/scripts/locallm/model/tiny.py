"""builtin:tiny: a byte-level BPE tokenizer and a tiny Llama pretrained on the train split's text.

It stands in for a real base model in the demo and the tests, so the whole DAG runs on a laptop CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from locallm.logs import get_logger
from locallm.tables import atomic_dir, read_table, save_figure, write_json, write_tsv

log = get_logger("base_model")

PAD, EOS = "<|pad|>", "<|end|>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
# Each turn is `<|role|>content<|end|>`; the EOS token closes every turn, so a completion ends with
# EOS and generation stops there. No whitespace around the content: the tokenized prompt is then
# always a prefix of the tokenized prompt + completion.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on `texts`, with pad, EOS, role tokens, chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=ROLE_TOKENS,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_model(tokenizer, tiny: dict[str, Any], seed: int):
    """A freshly initialised Llama sized by the config's `model.tiny` section."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=tiny["hidden_size"],
        intermediate_size=tiny["intermediate_size"],
        num_hidden_layers=tiny["num_layers"],
        num_attention_heads=tiny["num_heads"],
        num_key_value_heads=tiny["num_heads"],
        max_position_embeddings=tiny["context_length"],
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def token_stream(texts: Iterable[str], tokenizer) -> torch.Tensor:
    """All texts tokenized and concatenated, each closed by EOS (documents stay delimited)."""
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    flat = [token for doc in ids for token in [*doc, tokenizer.eos_token_id]]
    return torch.tensor(flat, dtype=torch.long)


def learning_rate_at(step: int, steps: int, peak: float) -> float:
    """Linear warmup over 5% of the steps, then cosine decay to 10% of the peak."""
    warmup = max(1, steps // 20)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(model, stream: torch.Tensor, tiny: dict[str, Any], seed: int) -> pd.DataFrame:
    """Causal-LM training on random windows of `stream`; returns the loss per step."""
    seq = min(tiny["pretrain_seq_length"], tiny["context_length"], len(stream) - 1)
    steps, batch = tiny["pretrain_steps"], tiny["batch_size"]
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tiny["learning_rate"], weight_decay=0.01)
    model.train()
    rows = []
    for step in range(steps):
        starts = torch.randint(0, len(stream) - seq, (batch,), generator=generator)
        window = torch.stack([stream[s : s + seq] for s in starts.tolist()])
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, steps, tiny["learning_rate"])
        loss = model(input_ids=window, labels=window).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        rows.append({"step": step + 1, "loss": loss.item(), "learning_rate": group["lr"]})
        if (step + 1) % 25 == 0 or step + 1 == steps:
            log.info("pretrain step %d/%d loss %.3f", step + 1, steps, loss.item())
    model.eval()
    return pd.DataFrame(rows, columns=["step", "loss", "learning_rate"])


def save_base(model, tokenizer, folder: str | Path) -> None:
    """save_pretrained the model (safetensors) and tokenizer into `folder`."""
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def plot_loss(history: pd.DataFrame, title: str):
    """A loss-per-step figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(history["step"], history["loss"])
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    return fig


def bootstrap_base(train: str, output: str, tiny: dict[str, Any], seed: int, threads: int) -> None:
    """Train the tokenizer and the tiny Llama on the train split's text; save both into `output`."""
    torch.set_num_threads(threads)
    started = time.perf_counter()
    texts = read_table(train, columns=["text"])["text"].tolist()
    if not texts:
        raise ValueError(f"{train}: the train split is empty; nothing to bootstrap builtin:tiny on")
    tokenizer = train_tokenizer(texts, tiny["vocab_size"])
    stream = token_stream(texts, tokenizer)
    log.info("tokenizer: %d tokens; train text: %d tokens", len(tokenizer), len(stream))
    model = tiny_model(tokenizer, tiny, seed)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("tiny Llama: %d parameters", n_params)
    history = pretrain(model, stream, tiny, seed)
    seconds = time.perf_counter() - started
    seq = min(tiny["pretrain_seq_length"], tiny["context_length"])
    with atomic_dir(output) as folder:
        save_base(model, tokenizer, folder)
        write_tsv(history, folder / "pretrain_log.tsv")
        save_figure(plot_loss(history, "builtin:tiny pretraining"), folder / "loss.png")
        write_json(
            {
                "parameters": n_params,
                "train_tokens": len(stream),
                "pretrain_tokens": len(history) * tiny["batch_size"] * seq,
                "final_loss": float(history["loss"].iloc[-1]) if len(history) else None,
                "wall_time_s": round(seconds, 2),
                "seed": seed,
                "settings": tiny,
            },
            folder / "bootstrap_info.json",
        )
    log.info("bootstrapped builtin:tiny in %.1f s", seconds)
