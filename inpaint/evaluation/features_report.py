"""Writing a features evaluation: ``report.md`` (one table per metric, rows = eyes, nose, mouth and
Average, columns = every scored column), ``metrics.json`` (the same numbers, every pair's scores and
the landmark record) and ``features_worst.png`` (the six worst pairs, every column side by side)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from inpaint.core.atomic import write_text
from inpaint.evaluation import protocol, summary
from inpaint.evaluation.feature_masks import FEATURE_POINTS, FEATURES, MARGINS, FeatureSet
from inpaint.evaluation.features import FeatureColumn, best_classical
from inpaint.evaluation.grid import GridCollector, render_rows
from inpaint.metrics.identity import SAME_PERSON_THRESHOLD
from inpaint.metrics.landmarks import DETECT_SIDE, DETECT_UPSAMPLE, LANDMARKS_68_FILE
from inpaint.render.visual import save_image

GRID_NAME = "features_worst.png"
#: Report tables, in order: the question of the protocol first.
TABLE_METRICS = ("identity_same", "std_psnr", "std_ssim", "std_lpips", "identity_distance", "std_hole_l1")
#: Per-pair scores kept in metrics.json (what the tables and the worst pairs are computed from).
PAIR_METRICS = ("std_psnr", "std_ssim", "std_lpips", "identity_distance")
_TITLES = {"identity_same": f"Identity kept (share of pairs with dlib descriptor distance < {SAME_PERSON_THRESHOLD})",
           "std_psnr": "PSNR dB (composite, [0, 1])", "std_ssim": "SSIM (composite, [0, 1])",
           "std_lpips": "LPIPS (composite, AlexNet v0.1)", "identity_distance": "Identity distance (dlib descriptor)",
           "std_hole_l1": "L1 in the hole (composite, [0, 1])"}
_DESCRIPTIONS = {"eyes": "both eyes and brows", "nose": "bridge to nostrils", "mouth": "lips"}


def _fmt(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return summary.METRIC_BY_KEY[key].fmt.format(value)


def _clean(value: Any) -> Any:
    """JSON has no NaN: unavailable values become null; numpy numbers become Python ones."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _point_ranges(indices: Sequence[int]) -> str:
    """(17, 18, …, 26, 36, …, 47) → "17–26, 36–47"."""
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def worst_rows(column: FeatureColumn, worst: Sequence[int], feature_set: FeatureSet) -> list[dict[str, Any]]:
    features = feature_set.pair_features()
    pairs = feature_set.pairs()
    return [{"position": int(i), "face": int(pairs[i][0]), "feature": features[i],
             **{k: float(column.per_pair[k][i]) for k in ("identity_distance", "std_lpips", "std_psnr")}}
            for i in worst]


def holes_summary(feature_set: FeatureSet) -> dict[str, Any]:
    ratios = feature_set.hole_ratios()
    features = np.array(feature_set.pair_features())
    return {name: {"points": _point_ranges(FEATURE_POINTS[name]), "margin_inter_ocular": MARGINS[name],
                   "hole_ratio_mean": float(ratios[features == name].mean()),
                   "hole_ratio_min": float(ratios[features == name].min()),
                   "hole_ratio_max": float(ratios[features == name].max())} for name in FEATURES}


def identity_over_classical(columns: Sequence[FeatureColumn]) -> dict[str, Any]:
    """Each model's identity kept minus the best classical fill's, in percentage points."""
    best = best_classical(columns)
    if best is None or best.average("identity_same") is None:
        return {}
    base = best.average("identity_same")
    return {"baseline": best.name, "baseline_identity_kept": base,
            "points": {c.name: 100.0 * (c.average("identity_same") - base)
                       for c in columns if c.is_model and c.average("identity_same") is not None}}


def to_json(bench: Any, feature_set: FeatureSet, columns: Sequence[FeatureColumn], shown: FeatureColumn,
            worst: Sequence[int], reasons: dict[str, str], extra: dict[str, Any], grid: str | None) -> dict[str, Any]:
    from inpaint.io.shards import read_index

    pairs = feature_set.pairs()
    ratios = feature_set.hole_ratios()
    fell_back = [int(i) for i in np.flatnonzero(~feature_set.detected)]
    return _clean({
        "format": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "protocol": {"masks": "features", "data": str(bench.root), "split": "eval_balanced", "size": bench.size,
                     "faces": feature_set.faces, "pairs": len(pairs), "features": list(FEATURES),
                     "fingerprint": protocol.shards_fingerprint(read_index(bench.root))},
        "metrics": {m.key: {"title": m.title, "convention": m.convention, "higher_is_better": m.higher_is_better}
                    for m in summary.METRICS},
        "lpips": {"available": not reasons.get("lpips"), "reason": reasons.get("lpips") or None},
        "identity": {"available": not reasons.get("identity"), "reason": reasons.get("identity") or None,
                     "threshold": SAME_PERSON_THRESHOLD},
        "baselines": {"scored": [c.name for c in columns if not c.is_model], "reason": reasons.get("baselines") or None},
        "models": [{"name": c.name, "source": c.source, **c.info, "features": c.table} for c in columns],
        "features": {
            "landmarks": {"model": LANDMARKS_68_FILE, "detect_side": DETECT_SIDE, "detect_upsample": DETECT_UPSAMPLE,
                          "detected": int(feature_set.detected.sum()), "fell_back": len(fell_back),
                          "fell_back_faces": fell_back},
            "holes": holes_summary(feature_set),
            "identity_kept_over_best_classical": identity_over_classical(columns),
            "worst": {"column": shown.name, "rule": "largest identity distance, ties by largest LPIPS",
                      "pairs": worst_rows(shown, worst, feature_set)},
            "grid": grid,
            "pairs": [{"face": int(f), "feature": name, "hole_ratio": float(r)}
                      for (f, _), name, r in zip(pairs, feature_set.pair_features(), ratios)],
            "per_pair": {c.name: {k: c.per_pair[k].tolist() for k in PAIR_METRICS} for c in columns},
        },
        **extra,
    })


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def render_markdown(data: dict[str, Any], columns: Sequence[FeatureColumn], reasons: dict[str, str]) -> str:
    p, feats = data["protocol"], data["features"]
    lm = feats["landmarks"]
    lines = ["# Evaluation report: holes over the eyes, the nose and the mouth", "",
             f"- Data: `{p['data']}` ({p['size']} px), {p['split']} split: {p['faces']} faces × "
             f"{len(FEATURES)} features = {p['pairs']} pairs (shards fingerprint `{p['fingerprint']}`)",
             "- Holes, one per face and feature, placed from dlib's 68 landmarks: "
             + "; ".join(f"**{name}** ({_DESCRIPTIONS[name]}, points {h['points']}, hull + {h['margin_inter_ocular']:g} × "
                         f"inter-ocular distance; hole ratio {h['hole_ratio_mean']:.1%} on average)"
                         for name, h in feats["holes"].items()),
             f"- Landmarks: dlib's detector found {lm['detected']} of {p['faces']} faces on a {lm['detect_side']}-px copy; "
             + (f"{lm['fell_back']} fell back to the whole crop as face box (faces {', '.join(map(str, lm['fell_back_faces']))})"
                if lm["fell_back"] else "none fell back to the whole crop")]
    models = [c for c in columns if c.is_model]
    baselines = [c for c in columns if not c.is_model]
    if models:
        lines.append("- Models: " + ", ".join(f"**{c.name}** (`{c.source}`)" for c in models))
    lines.append("- Classical baselines: " + (", ".join(f"**{c.name}** (`{c.source}`)" for c in baselines) if baselines
                                             else f"**none** — {reasons.get('baselines') or 'not requested'}"))
    lines.append("- LPIPS: " + ("AlexNet v0.1" if not reasons.get("lpips") else f"**unavailable** — {reasons['lpips']}"))
    lines.append("- Identity: " + (f"dlib ResNet face descriptor, same-person threshold {SAME_PERSON_THRESHOLD}"
                                   if not reasons.get("identity") else f"**unavailable** — {reasons['identity']}"))
    lines += ["", "Every score compares the composite (generated pixels in the hole, the original outside) with the "
              "ground truth, as the bucket report's standard convention. *Identity kept* is the share of pairs whose "
              "dlib descriptor distance between composite and ground truth is below "
              f"{SAME_PERSON_THRESHOLD}. *Average* is the mean of the three feature rows.", ""]
    gain = feats["identity_kept_over_best_classical"]
    if gain.get("points"):
        lines += [f"## Identity kept against the best classical fill ({gain['baseline']}, "
                  f"{gain['baseline_identity_kept']:.1%})", ""]
        lines += [f"- **{name}**: {points:+.1f} points" for name, points in gain["points"].items()] + [""]
    lines += ["## Per feature", ""]
    rows = [*FEATURES, summary.AVERAGE]
    for key in TABLE_METRICS:
        info = summary.METRIC_BY_KEY[key]
        lines += [f"### {_TITLES[key]} {'↑' if info.higher_is_better else '↓'}", ""]
        if all(c.table.get(r, {}).get(key) is None for c in columns for r in rows):
            reason = reasons.get("lpips") if key == "std_lpips" else reasons.get("identity")
            lines += [f"Unavailable: {reason or 'not computed'}", ""]
            continue
        body = [[r] + [_fmt(key, c.table.get(r, {}).get(key)) for c in columns] for r in rows]
        lines += _md_table(["Feature"] + [c.name for c in columns], body) + [""]
    worst = feats["worst"]
    lines += [f"## The {len(worst['pairs'])} worst pairs of {worst['column']}", "",
              f"Ordered by {worst['rule']}; each row: masked input, every column's composite, ground truth."
              + (" Holes shown white." if feats.get("grid") else ""), ""]
    lines += _md_table(["#", "Face", "Feature", "ID dist", "LPIPS", "PSNR std"],
                       [[str(k + 1), str(w["face"]), w["feature"], _fmt("identity_distance", w["identity_distance"]),
                         _fmt("std_lpips", w["std_lpips"]), _fmt("std_psnr", w["std_psnr"])]
                        for k, w in enumerate(worst["pairs"])]) + [""]
    if feats.get("grid"):
        lines += [f"![the worst pairs]({feats['grid']})", ""]
    return "\n".join(lines).rstrip() + "\n"


def render_worst_grid(collector: GridCollector, row_labels: Sequence[Sequence[str]], scale: int = 1) -> Image.Image:
    """Rows = the worst pairs (labelled with feature, face and scores), columns = masked input,
    each column's composite, ground truth."""
    return render_rows(collector, sorted(collector.inputs), row_labels, scale, label_w=76)


def write_features_report(out: Path, bench: Any, feature_set: FeatureSet, columns: Sequence[FeatureColumn],
                          shown: FeatureColumn, worst: Sequence[int], collector: GridCollector,
                          reasons: dict[str, str], extra: dict[str, Any]) -> dict[str, Path]:
    """``report.md``, ``metrics.json`` and ``features_worst.png`` into ``out``, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    grid = None
    if collector.inputs:
        rows = worst_rows(shown, worst, feature_set)
        labels = [[f"{w['feature']}", f"face {w['face']}", f"d {_fmt('identity_distance', w['identity_distance'])}",
                   f"LPIPS {_fmt('std_lpips', w['std_lpips'])}"] for w in rows]
        scale = 2 if next(iter(collector.inputs.values())).shape[0] < 96 else 1  # 64 px: room for the labels
        written[GRID_NAME] = save_image(render_worst_grid(collector, labels, scale), out / GRID_NAME)
        grid = GRID_NAME
    data = to_json(bench, feature_set, columns, shown, worst, reasons, extra, grid)
    written["metrics.json"] = write_text(out / "metrics.json", json.dumps(data, indent=2) + "\n", newline="")
    written["report.md"] = write_text(out / "report.md", render_markdown(data, columns, reasons), newline="")
    for c in columns:
        avg = c.table[summary.AVERAGE]
        print(f"{c.name}: features average over {avg['n']} pairs: "
              + " ".join(f"{k}={_fmt(k, avg.get(k))}" for k in ("std_psnr", "std_ssim", "std_lpips", "identity_same")
                         if avg.get(k) is not None))
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return written
