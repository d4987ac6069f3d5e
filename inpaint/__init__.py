"""facefill: face inpainting with gated-convolution U-Nets (models, training, evaluation, inference).

Kept import-light on purpose: ``data_prep`` and ``jobs`` import small helpers from here
without paying for torch.
"""

__version__ = "0.1.0"
