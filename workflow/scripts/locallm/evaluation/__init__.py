"""Evaluation: metrics with group-bootstrap intervals, perplexity, the good-enough decision."""
