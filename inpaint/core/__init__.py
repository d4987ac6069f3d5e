"""The torch-free kernel: run-dir contract, errors, atomic writes, shard format, CLI plumbing.

The only part of ``inpaint`` that ``jobs`` and ``data_prep`` may import; nothing here imports torch."""
