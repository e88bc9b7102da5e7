"""Export: the chosen model as GGUF, with an Ollama Modelfile and a README (after evaluation)."""
