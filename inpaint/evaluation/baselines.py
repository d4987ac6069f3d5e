"""Classical fills (OpenCV Navier–Stokes and Telea, scikit-image biharmonic) as evaluation columns
beside the models.

On faces the classical fill is a strong anchor (in the reference convention it beats the
published Model 2), so a learned model's numbers only mean something next to it. A baseline is
just another generator ``(masked_image, mask) -> output`` to the runner: it is scored on the
identical pairs, in both conventions, with LPIPS and identity like any model. No one fill is the
bar on every metric (biharmonic wins PSNR and SSIM on unseen faces, where Navier–Stokes is the
weakest), so each model is read against the *best classical fill per metric*
(:func:`best_classical`, :func:`add_gains_over_best`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from inpaint.classical import DEFAULT_RADIUS, EXTRA_HINT, available, check_method, classical_fill, opencv, require
from inpaint.core.errors import ConfigError
from inpaint.evaluation.fairness import GAIN_METRICS, gains_over_best
from inpaint.evaluation.runner import Generator
from inpaint.evaluation.summary import AVERAGE, METRIC_BY_KEY

#: The classical fills scored by default, each whenever its library is importable: Navier–Stokes
#: (OpenCV), the usual anchor, and biharmonic (scikit-image), the strongest in PSNR and SSIM.
DEFAULT_BASELINES = ("navier-stokes", "biharmonic")
LIBRARY = {"navier-stokes": "OpenCV", "telea": "OpenCV", "biharmonic": "scikit-image"}


def choose_baselines(requested: Sequence[str], no_default: bool) -> tuple[list[str], str]:
    """The baselines to score, and why a default one is absent when it is.

    Every default baseline whose library is importable is added, so that every table shows the
    classical fills beside the models without anyone having to remember a flag, and a model is
    read against the best of them; an explicit ``--baseline`` needs its library (a ConfigError
    naming the extra otherwise).
    """
    methods = list(dict.fromkeys(check_method(m) for m in requested))
    if methods and no_default:
        raise ConfigError("--no-baseline contradicts --baseline: give one or the other")
    if methods:
        for m in methods:  # explicit request: a missing library is the user's error, named with its extra
            require(m)
        return methods, ""
    if no_default:
        return [], "skipped (--no-baseline)"
    chosen = [m for m in DEFAULT_BASELINES if available(m)]
    missing = [m for m in DEFAULT_BASELINES if m not in chosen]
    if not missing:
        return chosen, ""
    libraries = list(dict.fromkeys(LIBRARY[m] for m in missing))
    return chosen, (f"{', '.join(missing)} left out: {' and '.join(libraries)} "
                    f"{'is' if len(libraries) == 1 else 'are'} not installed; {EXTRA_HINT}")


def baseline_generator(method: str, radius: int = DEFAULT_RADIUS) -> Generator:
    check_method(method)
    return lambda masked, mask: classical_fill(masked, mask, method, radius)


def baseline_info(method: str, radius: int = DEFAULT_RADIUS) -> dict[str, Any]:
    """What metrics.json records about a baseline column (what a model column records as config)."""
    if method == "biharmonic":
        import skimage
        return {"kind": "baseline", "method": method, "scikit-image": skimage.__version__}
    return {"kind": "baseline", "method": method, "radius": radius, "opencv": opencv().__version__}



def baseline_source(method: str, radius: int = DEFAULT_RADIUS) -> str:
    """The library call behind a baseline column, as the report names it."""
    if method == "biharmonic":
        return "skimage.restoration.inpaint_biharmonic"
    return f"cv2.inpaint {method} radius {radius}"


def _value(row: Mapping[str, Any] | None, key: str) -> float | None:
    value = (row or {}).get(key)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def best_classical(results: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Per gain metric, the scored baseline with the best *Average* and that average:
    ``{metric: {"baseline": name, "average": value}}``, empty when no baseline was scored.

    No single classical fill is the bar: on faces biharmonic beats Navier–Stokes in PSNR and SSIM
    while Navier–Stokes may keep the edge elsewhere, so a model is read against whichever fill is
    best on each metric. Ties go to the first scored. Metrics no baseline has (identity without
    dlib) are left out.
    """
    baselines = [r for r in results if r.info.get("kind") == "baseline"]
    best: dict[str, dict[str, Any]] = {}
    for metric in GAIN_METRICS:
        scored = [(r.name, v) for r in baselines if (v := _value(r.buckets.get(AVERAGE), metric.key)) is not None]
        if not scored:
            continue
        name, value = max(scored, key=lambda item: metric.sign * item[1])  # max keeps the first of equals
        best[metric.key] = {"baseline": name, "average": value}
    return best


def bucket_gains(result: Any, results: Sequence[Any], best: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """``{bucket label | "Average": {metric: gain}}`` of ``result`` over the best classical fill of
    each metric, positive = better (for LPIPS and L1: fill − model)."""
    by_name = {r.name: r for r in results if r.info.get("kind") == "baseline"}
    table: dict[str, dict[str, float]] = {}
    for label, row in result.buckets.items():
        gains: dict[str, float] = {}
        for key, chosen in best.items():
            ours = _value(row, key)
            theirs = _value(by_name[chosen["baseline"]].buckets.get(label), key)
            if ours is not None and theirs is not None:
                gains[key] = (ours - theirs) if METRIC_BY_KEY[key].higher_is_better else (theirs - ours)
        table[label] = gains
    return table


def add_gains_over_best(results: Sequence[Any], seed: int = 0) -> dict[str, dict[str, Any]]:
    """Set ``gains`` on every model (not baseline) result: the best classical fill per metric, the
    gain over it per hole-ratio bucket and, when the balanced split was scored, per race × gender
    cell with paired-bootstrap intervals. Returns :func:`best_classical` (empty: no baseline, no gains)."""
    best = best_classical(results)
    if not best:
        return best
    for r in results:
        if r.info.get("kind") == "baseline":
            continue
        r.gains = {"baselines": {key: chosen["baseline"] for key, chosen in best.items()},
                   "buckets": bucket_gains(r, results, best), **gains_over_best(r, results, best, seed)}
    return best
