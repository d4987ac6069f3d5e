"""Group names for the demographic breakdown on the ``eval_balanced`` split.

UTKFace labels (stored by the packer as (age, gender, race), −1 unknown) are turned into
readable group names; a model that repairs some groups of people worse than others should be
visible in the report, not hidden in an average.
"""

from __future__ import annotations

import numpy as np

from inpaint.core.shard_format import GENDER_NAMES as GENDERS, RACE_NAMES as RACES  # the shards' label codes
UNKNOWN = "unknown"


def race_name(code: int) -> str:
    return RACES[code] if 0 <= code < len(RACES) else UNKNOWN


def gender_name(code: int) -> str:
    return GENDERS[code] if 0 <= code < len(GENDERS) else UNKNOWN


def group_columns(labels: np.ndarray) -> dict[str, np.ndarray]:
    """From (N,3) (age, gender, race) labels: the group of each face by race × gender, by race
    and by gender."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] < 3:
        raise ValueError(f"labels must be (N,3) (age, gender, race), got {labels.shape}")
    races = np.array([race_name(int(r)) for r in labels[:, 2]], dtype=object)
    genders = np.array([gender_name(int(g)) for g in labels[:, 1]], dtype=object)
    cells = np.array([f"{r} {g}" for r, g in zip(races, genders)], dtype=object)
    return {"race_gender": cells, "race": races, "gender": genders}


def group_orders() -> dict[str, list[str]]:
    """Row order of each breakdown: the label codes' order, unknown last."""
    races = [*RACES, UNKNOWN]
    genders = [*GENDERS, UNKNOWN]
    return {"race_gender": [f"{r} {g}" for r in races for g in genders], "race": races, "gender": genders}
