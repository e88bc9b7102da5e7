"""Annotation: the chosen stage labels the corpus; label shares with prediction-powered CIs."""
