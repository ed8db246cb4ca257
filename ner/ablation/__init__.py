"""Ablation studies: a grid of training runs and evaluation arms, their comparison over seeds, and reports.

Read in this order: `grid` (arms, tasks, commands) -> `status` / `runner` (train the grid, resumably) ->
`protocol` / `evaluation` (decode-only arms and the model card's protocol, next to each run) -> `stats`
(seed summaries, paired tests) -> `compare` (aggregate) -> `report` / `plots` (tables, Markdown, PNGs) ->
`actions` (what `experiments/ablate.py action=...` does).
"""
