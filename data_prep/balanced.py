"""The balanced evaluation set: equal numbers of test faces per race x gender cell.

The mission asks for at least 100 faces of people of different races and genders; taking the
same number from each of the 10 cells (as many as the scarcest cell allows, at least
``min_per_cell``) makes per-group metrics comparable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inpaint.core.shard_format import GENDER_NAMES, RACE_NAMES


def cell_name(race: int, gender: int) -> str:
    return f"{RACE_NAMES[race]}/{GENDER_NAMES[gender]}"


def select_balanced(paths: Sequence[str], labels: np.ndarray, min_per_cell: int,
                    ages: tuple[int, int], seed: int) -> tuple[list[int], dict]:
    """Indices (into ``paths``) of the balanced set and its composition for the manifest."""
    labels = np.asarray(labels).reshape(-1, 3)
    age, gender, race = labels[:, 0], labels[:, 1], labels[:, 2]
    adult = (age >= ages[0]) & (age <= ages[1])
    rng = np.random.default_rng(seed)
    pools: dict[tuple[int, int], list[int]] = {}
    for r in range(len(RACE_NAMES)):
        for g in range(len(GENDER_NAMES)):
            rows = sorted((int(i) for i in np.flatnonzero(adult & (race == r) & (gender == g))),
                          key=lambda i: paths[i])
            pools[(r, g)] = [rows[i] for i in rng.permutation(len(rows))]
    scarcest = min(len(p) for p in pools.values())
    per_cell = max(min_per_cell, scarcest)
    chosen: list[int] = []
    cells, shortfall = [], []
    for (r, g), pool in pools.items():
        take = pool[:per_cell]
        chosen.extend(sorted(take, key=lambda i: paths[i]))
        cells.append({"race": RACE_NAMES[r], "gender": GENDER_NAMES[g], "available": len(pool),
                      "selected": len(take)})
        if len(take) < min_per_cell:
            shortfall.append({"cell": cell_name(r, g), "available": len(pool), "needed": min_per_cell})
    composition = {
        "ages": list(ages), "min_per_cell": min_per_cell, "per_cell": per_cell, "seed": seed,
        "total": len(chosen), "cells": cells, "shortfall": shortfall,
    }
    return chosen, composition
