"""Inference: prompts in token-budget batches, label log-likelihoods, generation, predictions."""
