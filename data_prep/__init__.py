"""Packing tools: turn folders of face photos and hole masks into validated HDF5 shards.

``python -m data_prep.pack`` writes a shard folder (see docs/CONTRACTS.md "Shards"),
``python -m data_prep.verify`` checks one against its ``index.json``; ``inpaint.io.shards`` reads it.
"""
