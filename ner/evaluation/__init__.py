"""Evaluating finished runs: the one reader of a run folder, re-decoding checkpoints, and scoring files."""
