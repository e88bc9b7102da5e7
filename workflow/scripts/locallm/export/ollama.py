"""The Ollama Modelfile and the README that travel with an exported GGUF file.

The prompt format is the one the workflow evaluated: the model's chat template applied to the
task's messages, rendered once with markers where Ollama's `{{ .System }}` and `{{ .Prompt }}`
go. So `ollama run` on a passage sends the model the same tokens as the infer job did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from locallm.task.context import render_prompt
from locallm.task.prompts import build_prompt, prompt_columns

# Private-use characters: never in a chat template or a task prompt.
SYSTEM_MARK, PROMPT_MARK = "\ue000system\ue000", "\ue001prompt\ue001"


def passage_only(task: Mapping[str, Any]) -> bool:
    """True when the task's prompt reads only {text}: the user then sends the passage alone and
    the template wraps it in the instruction."""
    return prompt_columns(dict(task)) == ["text"]


def ollama_template(
    tokenizer, task: Mapping[str, Any], examples: Sequence[Mapping[str, Any]] = ()
) -> str:
    """The Modelfile's TEMPLATE: the rendered prompt with Ollama's variables at the markers.

    With a prompt that reads other columns than {text}, `{{ .Prompt }}` is the whole question
    (the README shows how to write it); few-shot examples are fixed text inside the template.
    """
    task = dict(task)
    if task["system_prompt"]:
        task["system_prompt"] = SYSTEM_MARK
    if passage_only(task):
        messages = build_prompt({"text": PROMPT_MARK}, task, examples)
    else:
        messages = build_prompt({}, {**task, "prompt": "{text}"}, [])
        messages[-1]["content"] = PROMPT_MARK
        if examples:
            raise ValueError(
                "export of a few-shot stage needs a task.prompt that reads only {text}"
            )
    rendered = render_prompt(tokenizer, messages)
    # Go templates: a literal `{{` in the chat format must not open an action.
    rendered = rendered.replace("{{", '{{ "{{" }}')
    return rendered.replace(SYSTEM_MARK, "{{ .System }}").replace(PROMPT_MARK, "{{ .Prompt }}")


def _quoted(text: str, what: str) -> str:
    if '"""' in text:
        raise ValueError(f'{what} contains """, which a Modelfile cannot quote')
    return f'"""{text}"""'


def modelfile(
    tokenizer, task: Mapping[str, Any], context: int, examples: Sequence[Mapping] = ()
) -> str:
    """The Modelfile: the GGUF, the prompt format, the system prompt, greedy decoding, stops."""
    lines = [
        "FROM ./model.gguf",
        f"TEMPLATE {_quoted(ollama_template(tokenizer, task, examples), 'the prompt format')}",
    ]
    if task["system_prompt"]:
        lines.append(f"SYSTEM {_quoted(task['system_prompt'], 'task.system_prompt')}")
    lines += ["PARAMETER temperature 0", f"PARAMETER num_ctx {context}"]
    if tokenizer.eos_token:
        lines.append(f'PARAMETER stop "{tokenizer.eos_token}"')
    return "\n".join(lines) + "\n"


def readme(facts: Mapping[str, Any], task: Mapping[str, Any], ollama_name: str) -> str:
    """How to use the file in Ollama, LM Studio, llama.cpp, R and Python, with the task's labels."""
    labels = list(task["labels"] or [])
    label_text = ", ".join(f"`{label}`" for label in labels) or "free text"
    passage = passage_only(task)
    ask = "the passage alone" if passage else "the question, written as task.prompt below"
    example = "Text of one passage to annotate."
    r_labels = ", ".join(f'"{label}"' for label in labels)
    lines = [
        f"# {facts['name']}",
        "",
        f"Variant `{facts['variant']}` at stage `{facts['stage']}` of this locallm run, exported "
        f"as `model.gguf` ({facts['weight_type']}) with an Ollama `Modelfile`. Base: "
        f"{facts['base']}; licence: {facts.get('licence') or 'see the base model'}.",
        "",
        f"**Task**: answers one of {label_text}. Send {ask}; the Modelfile's template adds the "
        "instruction and the chat format exactly as the workflow asked the model.",
        "",
        "task.prompt (`{text}` is the passage):",
        "",
        "```text",
        str(task["prompt"]),
        "```",
        "",
    ]
    if task["system_prompt"]:
        lines += ["System prompt (the Modelfile's SYSTEM):", "", "```text", task["system_prompt"],
                  "```", ""]  # fmt: skip
    if facts.get("agreement") is not None:
        lines += [
            f"Checked: loaded back from this file, the model gave the same label as the workflow's "
            f"model on {facts['agreement']:.1%} of {facts['checked_rows']} rows "
            "(label log-likelihoods, as the infer job scores them).",
            "",
        ]
    lines += [
        "The workflow classified by comparing the labels' log-likelihoods; the tools below "
        "generate greedily (temperature 0), which usually, not always, gives the same label. "
        "Compare a sample with the workflow's predictions before relying on it.",
        "",
        "## Ollama",
        "",
        "```sh",
        f"ollama create {ollama_name} -f Modelfile",
        f'ollama run {ollama_name} "{example}"',
        "```",
        "",
        "## LM Studio",
        "",
        "`lms import model.gguf` (or drag the file into LM Studio), set temperature 0, and send "
        f"{'the task prompt with the passage in place of {text}' if passage else 'the question'}; "
        "the chat template is in the file.",
        "",
        "## llama.cpp",
        "",
        "```sh",
        "llama-server -m model.gguf --temp 0   # OpenAI-compatible chat API on port 8080",
        "llama-cli -m model.gguf --temp 0 -cnv  # chat in the terminal",
        "```",
        "",
        "## R (after `ollama create` above)",
        "",
        "```r",
        "library(rollama)",
        f'rollama::query("{example}", model = "{ollama_name}", screen = FALSE,',
        "               model_params = list(temperature = 0))",
        "library(ollamar)",
        f'ollamar::generate("{ollama_name}", "{example}", output = "text", temperature = 0)',
        f"labels <- c({r_labels})",
        "```",
        "",
        "## Python",
        "",
        "```python",
        "import ollama  # pip install ollama",
        f'ollama.generate(model="{ollama_name}", prompt="{example}",',
        '                options={"temperature": 0})["response"]',
        "",
        "from llama_cpp import Llama  # pip install llama-cpp-python",
        f'llm = Llama(model_path="model.gguf", n_ctx={facts["context_length"]})',
        'messages = [{"role": "user", "content": PROMPT.format(text=passage)}]',
        "llm.create_chat_completion(messages=messages, temperature=0)",
        "```",
        "",
        "`PROMPT` is task.prompt above"
        + (" (prepend the system prompt as a system message)." if task["system_prompt"] else "."),
        "",
    ]
    return "\n".join(lines)
