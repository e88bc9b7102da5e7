"""Base models: their facts (licence, chat template, context), where they come from (tiny,
builtin wheels, GGUF, Hub), loading in a chosen precision, shape and memory, pre-flight."""
