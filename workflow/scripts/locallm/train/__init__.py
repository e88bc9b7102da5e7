"""Training: tokenized SFT data, SFT and DPO with TRL, checkpoints and resume, run records."""
