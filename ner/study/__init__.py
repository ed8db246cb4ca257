"""The softmax-vs-CRF study: arms evaluated on the runs of a Hydra sweep, compared over seeds.

Read in this order: `arms` (what a row of the comparison is) -> `protocol` / `evaluate_arms` (decode-only
arms and the model card's protocol, next to each run) -> `stats` (seed summaries, paired tests) ->
`compare` (aggregate) -> `report` / `plots` (tables, Markdown, PNGs) -> `sweep` (the Hydra callback that
runs it all when a sweep ends). Beside it, `search`: the recipe search's report (dev F1 only), which
picks the recipe the study then runs.
"""
