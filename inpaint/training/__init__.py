"""The training loop and its helpers: deterministic pairs, deadlines, signals, RNG, DDP, metrics.

Training knows nothing about batch systems: the job layer talks to it only through the
``python -m inpaint.train`` command line, its exit codes and the run dir.
"""
