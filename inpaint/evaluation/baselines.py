"""Classical fills (OpenCV Navier–Stokes and Telea, scikit-image biharmonic) as evaluation columns
beside the models.

On faces the classical fill is a strong anchor (in the reference convention it beats the
published Model 2), so a learned model's numbers only mean something next to it. A baseline is
just another generator ``(masked_image, mask) -> output`` to the runner: it is scored on the
identical pairs, in both conventions, with LPIPS and identity like any model.
"""

from __future__ import annotations

from typing import Any, Sequence

from inpaint.classical import DEFAULT_RADIUS, EXTRA_HINT, check_method, classical_fill, opencv, opencv_available, require
from inpaint.errors import ConfigError
from inpaint.evaluation.runner import Generator

#: The baseline that gains are measured against, and the one added by default when OpenCV is there.
REFERENCE = "navier-stokes"


def choose_baselines(requested: Sequence[str], no_default: bool) -> tuple[list[str], str]:
    """The baselines to score, and why Navier–Stokes is absent when it is.

    Navier–Stokes is added by default whenever OpenCV is importable, so that every table shows
    the classical fill beside the models without anyone having to remember a flag; an explicit
    ``--baseline`` needs OpenCV (a ConfigError naming the extra otherwise).
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
    if not opencv_available():
        return [], f"OpenCV is not installed: {EXTRA_HINT}"
    return [REFERENCE], ""


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
