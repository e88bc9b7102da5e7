"""Export: the chosen model as a GGUF file with an Ollama Modelfile and a README (after evaluation)."""
