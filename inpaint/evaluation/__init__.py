"""Evaluation of trained generators: which model is better, per hole size and per group of people.

Kept apart from training: nothing here imports the trainer, and the runner scores any callable
``(masked_image, mask) -> output``, so a baseline or a "perfect model" is scored the same way as
a checkpoint. Modules: ``options`` (the command line of ``python -m inpaint.evaluate``),
``benchmark`` (what that command runs: the columns, the shard folders, one report per folder),
``features`` (the feature-hole protocol), ``protocol`` (the fixed pair list), ``runner`` (per-pair metrics),
``model_eval`` (one generator over the whole protocol), ``summary`` (per bucket / per group
means), ``demographics`` (group labels), ``report`` (report.md, metrics.json, metrics.csv),
``grid`` (the comparison figure) and ``samples`` (every composite as PNG).
"""
