"""Job layer: carries a training run across as many batch jobs as it takes.

It only ever calls the trainer's command line (``python -m inpaint.train``) and reads its exit
code; the trainer knows nothing about schedulers.
"""
