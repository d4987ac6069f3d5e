"""Inference helpers for real photos: reading masks in any convention, choosing the context crop
around a hole, running the generator in batches, and feathered compositing that leaves every
pixel outside the hole untouched."""
