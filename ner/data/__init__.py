"""Reading, splitting, tokenizing and batching IOB2 corpora."""
