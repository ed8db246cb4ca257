"""Code shipped inside exported Hugging Face folders (`python -m ner export`) for heads that need more
than an argmax: loaded from the folder with `trust_remote_code=True`, so it imports nothing from `ner`."""
