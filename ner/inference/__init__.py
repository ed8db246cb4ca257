"""Using a trained checkpoint: the `Predictor` (raw text or words in, entities or tags out), the
`predict` command, raw-text tokenization, and the Hugging Face export with the code it ships (`hf/`)."""
