"""Reading one model's averages back out of ``inpaint.evaluate``'s ``metrics.json``.

Used when weights are exported (``python -m inpaint.export --metrics``) so the weights'
card carries the figures they were judged by, with the protocol that produced them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from inpaint.core.errors import CheckpointError


def evaluation_averages(metrics_json: str | os.PathLike, model: str) -> dict[str, Any]:
    """The 'Average' row of one model in ``inpaint.evaluate``'s metrics.json, with its protocol
    and the 'Average' rows of the classical baselines scored on the same pairs: a learned model's
    figures mean little without the classical fill's beside them. With them, the best classical
    fill per metric and the model's average gain over it, when the report has them."""
    from inpaint.evaluation.summary import AVERAGE

    path = Path(metrics_json)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable metrics.json from inpaint.evaluate ({exc})") from exc
    names = [m.get("name") for m in report.get("models", [])]
    if model not in names:
        raise CheckpointError(f"{path} has no model named {model!r} (it has {', '.join(map(str, names))}): pass one of those")
    entry = report["models"][names.index(model)]
    baselines = {m["name"]: m["buckets"].get(AVERAGE) for m in report["models"] if m.get("kind") == "baseline"}
    averages = {"average": entry["buckets"].get(AVERAGE), "baselines": baselines, "protocol": report.get("protocol"),
                "report": str(path.resolve())}
    gains = ((entry.get("gain_over_best_classical") or {}).get("buckets") or {}).get(AVERAGE)
    if report.get("best_classical") and gains:  # the bar the model was judged against, and its gain over it
        averages.update(best_classical=report["best_classical"], gain_over_best_classical=gains)
    return averages
