"""The supervised task: leak-free splits, labels, prompts, SFT and preference tables, prompts fitted
to a model's context."""
