"""Writing an evaluation: ``report.md`` (a summary table first, then tables laid out like the
reference: rows = buckets + Average, columns = models, one table per metric), ``bucket_plot.png``
(PSNR and LPIPS per bucket), ``metrics.json`` (everything, machine-readable; other code reads its
keys) and ``metrics.csv`` (one number per row, for plotting across runs).

The report is read by people before it is read by code: the answer (which method is better, by
how much, against which classical fill) comes first, in one table; the detail follows, with the
best and worst groups as rows of their tables and cells without faces named, not left out.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from inpaint.core.atomic import write_text
from inpaint.core.buckets import BUCKET_LABELS
from inpaint.evaluation.bucket_plot import PLOT_NAME, write_bucket_plot
from inpaint.evaluation.demographics import UNKNOWN, group_orders
from inpaint.evaluation.fairness import GAIN_BY_KEY, GAIN_METRICS, GainMetric
from inpaint.evaluation.summary import AVERAGE, METRIC_BY_KEY, METRICS, available_metrics
from inpaint.metrics.identity import SAME_PERSON_THRESHOLD
from inpaint.io.provenance import overlap_sentence

Table = dict[str, dict[str, Any]]
BREAKDOWNS = (("race_gender", "race × gender"), ("race", "race"), ("gender", "gender"))


@dataclass
class ModelResult:
    name: str
    source: str
    info: dict[str, Any]
    buckets: Table
    demographics: dict[str, Table] = field(default_factory=dict)
    spreads: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: Gain over the best classical fill of each metric (inpaint.evaluation.baselines.add_gains_over_best):
    #: ``baselines`` (metric → fill), ``buckets`` (label → metric → gain) and, with the balanced
    #: split, the per-cell block of inpaint.evaluation.fairness; empty for baselines or without one.
    gains: dict[str, Any] = field(default_factory=dict)
    #: How many scored faces/masks the model was trained on (``checked``, ``source``, ``faces``,
    #: ``masks``, ``pairs``) or why that was not checked (``reason``); None for baselines.
    training_overlap: dict[str, Any] | None = None
    #: Per-pair metrics on the balanced split and the race × gender cell of each pair: what the
    #: paired gains are computed from. Kept in memory only, not written.
    balanced_per_pair: dict[str, Any] = field(default_factory=dict, repr=False)
    balanced_cells: Any = field(default=None, repr=False)
    #: ``{"pairs": k, "scored": n}`` when the model's outputs held NaN or inf on k of the n pairs
    #: (left out of its means); None when every output was finite.
    non_finite: dict[str, int] | None = None


#: Why a model's pairs with NaN or inf outputs have no scores, in the report and metrics.json.
NON_FINITE_REASON = ("its outputs held NaN or inf (weights that diverged, or an overflow at this precision: try "
                     "--precision fp32); those pairs are left out of its averages")


def non_finite_text(m: ModelResult) -> str:
    """One sentence on a model's non-finite outputs."""
    assert m.non_finite is not None
    return f"**{m.name}**: on {m.non_finite['pairs']} of {m.non_finite['scored']} pairs {NON_FINITE_REASON}"


@dataclass
class Evaluation:
    models: list[ModelResult]
    protocol: dict[str, Any]
    lpips_reason: str = ""      # empty = LPIPS computed
    identity_reason: str = ""   # empty = identity computed
    extra: dict[str, Any] = field(default_factory=dict)
    gain_reason: str = ""       # why no model has gains over the best classical fill (empty = some have)
    #: Per metric, the best classical fill and its average (inpaint.evaluation.baselines.best_classical).
    best_classical: dict[str, dict[str, Any]] = field(default_factory=dict)


def _unavailable_reason(ev: Evaluation, key: str) -> str:
    """Why no model has a value of metric ``key``: the option that skipped it, else the models
    whose outputs were not finite, else "not computed"."""
    skipped = ev.lpips_reason if key == "std_lpips" else ev.identity_reason if key.startswith("identity") else ""
    if skipped:
        return skipped
    broken = [m.name for m in ev.models if m.non_finite]
    if broken:
        return f"the outputs of {', '.join(broken)} held NaN or inf on every pair scored"
    return "not computed"


def _fmt(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return METRIC_BY_KEY[key].fmt.format(value)


def _md_table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> list[str]:
    """A Markdown table: the first ``text_columns`` left-aligned, the numbers right-aligned."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < text_columns else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _bucket_rows(ev: Evaluation) -> list[str]:
    return [label for label in (*BUCKET_LABELS, AVERAGE) if any(label in m.buckets for m in ev.models)]


#: The summary's columns: what a reader compares methods by (standard convention first).
SUMMARY_METRICS = (("std_psnr", "PSNR std (dB)"), ("ref_psnr", "PSNR ref (dB)"), ("std_ssim", "SSIM"),
                   ("std_lpips", "LPIPS"), ("identity_same", "Same person"))


def _summary_section(ev: Evaluation, plot: str | None) -> list[str]:
    """One table: every method's averages, and under each model its gain over the best classical
    fill of each metric (the fill named in the cell); the plot of PSNR and LPIPS per bucket."""
    averages = [m.buckets.get(AVERAGE, {}) for m in ev.models]
    shown = [(key, title) for key, title in SUMMARY_METRICS if any(a.get(key) is not None for a in averages)]
    p = ev.protocol
    counts = p.get("bucket_counts") or {}
    pairs = f"{sum(counts.values())} test pairs ({p.get('pairs_per_bucket')} per hole-ratio bucket; " if counts else "the test pairs ("
    lines = ["## Summary", "",
             f"Averages over {pairs}the *Average* rows of the tables below). *std*: the standard convention, the composite (model "
             "pixels in the hole, the photo outside) in [0, 1], as LaMa and MAT report it; *ref*: the reference "
             "convention, the raw output in [−1, 1], as the published face-inpainting tables (17–20 dB) report it. "
             "**Bold**: the best classical fill of each metric, the bar a model is read against; each model's gain "
             "row is its average minus that fill's (positive = better, for LPIPS too: fill − model).", ""]
    header = ["Method", "Kind"] + [f"{title} {'↑' if METRIC_BY_KEY[key].higher_is_better else '↓'}" for key, title in shown]
    body = []
    for m, avg in zip(ev.models, averages):
        baseline = m.info.get("kind") == "baseline"
        cells = []
        for key, _ in shown:
            text = _fmt(key, avg.get(key))
            best = (ev.best_classical.get(key) or {}).get("baseline")
            cells.append(f"**{text}**" if baseline and best == m.name and text != "–" else text)
        body.append([m.name, "classical fill" if baseline else "model"] + cells)
        gains = ((m.gains.get("buckets") or {}).get(AVERAGE) or {}) if m.gains else {}
        if gains:
            body.append([f"{m.name}: gain over the best classical fill", "gain"] + [
                f"{GAIN_BY_KEY[key].fmt.format(gains[key])} ({m.gains['baselines'][key]})" if key in gains else "–"
                for key, _ in shown])
    lines += _md_table(header, body, text_columns=2) + [""]
    missing = [(title, _unavailable_reason(ev, key)) for key, title in SUMMARY_METRICS if (key, title) not in shown]
    for title, reason in missing:
        lines += [f"{title}: unavailable — {reason}", ""]
    for m in ev.models:
        if m.non_finite:
            lines += [non_finite_text(m) + ".", ""]
    if ev.gain_reason and any(m.info.get("kind") != "baseline" for m in ev.models):
        lines += [f"No gains over a classical fill: {ev.gain_reason}", ""]
    if plot:
        lines += [f"![PSNR and LPIPS per hole-ratio bucket, one line per method]({plot})", ""]
    return lines


def render_markdown(ev: Evaluation, plot: str | None = None) -> str:
    """report.md; ``plot``: the file name of the per-bucket plot beside it, when one was drawn."""
    lines = ["# Evaluation report", ""]
    lines += _summary_section(ev, plot)
    lines += ["## Setup", ""]
    p = ev.protocol
    lines += [
        f"- Data: `{p.get('data')}` ({p.get('size')} px), pair list `{p.get('pairs_file')}` (seed {p.get('seed')}, "
        f"fingerprint `{p.get('fingerprint')}`)",
        f"- Pairs: {p.get('pairs_per_bucket')} requested per hole-ratio bucket; held: "
        + ", ".join(f"{label} {n}" for label, n in p.get("bucket_counts", {}).items()),
    ]
    if p.get("shortfalls"):
        lines.append("- **Fewer pairs than requested** in " + ", ".join(f"{k} ({v})" for k, v in p["shortfalls"].items())
                     + ": the shards hold fewer test masks in those buckets (each mask is used once per bucket).")
    models = [m for m in ev.models if m.info.get("kind") != "baseline"]
    baselines = [m for m in ev.models if m.info.get("kind") == "baseline"]
    if models:
        lines.append("- Models: " + ", ".join(f"**{m.name}** (`{m.source}`)" for m in models))
    reason = (ev.extra.get("baselines") or {}).get("reason")
    lines.append("- Classical baselines: " + (", ".join(f"**{m.name}** (`{m.source}`)" for m in baselines)
                                             + (f" — {reason}" if reason else "") if baselines
                                             else f"**none** — {reason or 'not requested'}"))
    lines += [f"- Training data: {_overlap_text(m)}" for m in models if m.training_overlap]
    lines.append("- LPIPS: " + ("AlexNet v0.1" if not ev.lpips_reason else f"**unavailable** — {ev.lpips_reason}"))
    lines.append("- Identity: " + (f"dlib ResNet face descriptor, same-person threshold {SAME_PERSON_THRESHOLD}"
                                   if not ev.identity_reason else f"**unavailable** — {ev.identity_reason}"))
    lines += [
        "",
        "Two conventions, both always reported: the *reference* convention scores the raw generator output "
        "against the ground truth in [-1, 1] (as the published face-inpainting tables); the *standard* "
        "convention scores the composite (generated pixels in the hole, original outside) in [0, 1] "
        "(as LaMa / MAT). Values are per image, then averaged; *Average* is the mean of the bucket rows.",
        "",
    ]
    lines += _best_classical_section(ev)
    lines += ["## Per hole-ratio bucket", ""]
    rows = _bucket_rows(ev)
    shown = available_metrics([m.buckets for m in ev.models])
    for metric in METRICS:
        lines.append(f"### {metric.title} {'↑' if metric.higher_is_better else '↓'}")
        lines.append("")
        if metric not in shown:
            lines += [f"Unavailable: {_unavailable_reason(ev, metric.key)}", ""]
            continue
        body = [[label] + [_fmt(metric.key, m.buckets.get(label, {}).get(metric.key)) for m in ev.models] for label in rows]
        lines += _md_table(["Hole ratio"] + [m.name for m in ev.models], body) + [""]
    if any(m.demographics for m in ev.models):
        lines += ["## Demographic breakdown (eval_balanced split)", "",
                  f"Each balanced face is paired with one seeded test mask; within each race × gender cell the "
                  f"hole-ratio buckets are dealt in turn, so every group sees the same mix of hole sizes "
                  f"({p.get('balanced_pairs', 0)} pairs). *Spread* is the gap between the best and worst group.", ""]
        for m in ev.models:
            if not m.demographics:
                continue
            metrics_here = available_metrics(list(m.demographics.values()))
            for kind, title in BREAKDOWNS:
                table = m.demographics.get(kind, {})
                if not table:
                    continue
                lines += [f"### {m.name}: by {title}", ""]
                body = _group_rows(kind, table, lambda row: [str(row["n"])] + [_fmt(x.key, row.get(x.key)) for x in metrics_here],
                                   len(metrics_here))
                spreads = m.spreads.get(kind, {})
                for label, field_name in (("**best**", "best"), ("**worst**", "worst")):
                    body.append([label, ""] + [str(spreads[x.key][field_name]) if x.key in spreads else "–" for x in metrics_here])
                body.append(["**spread (best − worst)**", ""] + [
                    _fmt(x.key, spreads[x.key]["gap"]) if x.key in spreads else "–" for x in metrics_here])
                header = ["Group", "Pairs"] + [_short_name(x.key) for x in metrics_here]
                lines += _md_table(header, body) + [""]
    lines += _gain_section(ev)
    if ev.extra.get("grid"):
        lines += ["## Samples", "", f"![comparison grid]({ev.extra['grid']})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _gain_cell(metric: GainMetric, value: dict[str, float] | None) -> str:
    if not value:
        return "–"
    return f"{metric.fmt.format(value['gain'])} [{metric.fmt.format(value['low'])}, {metric.fmt.format(value['high'])}]"


def _overlap_text(m: ModelResult) -> str:
    """What the report says about the scored pairs and the model's training data."""
    overlap = m.training_overlap or {}
    if not overlap.get("checked"):
        return f"**{m.name}** not checked for faces or masks it was trained on: {overlap.get('reason', 'no record')}"
    sentence = overlap_sentence(overlap)
    if sentence:
        return f"**{m.name}** {sentence}"
    return (f"**{m.name}** was trained on none of the {overlap['faces']['scored']} faces and {overlap['masks']['scored']} "
            f"masks scored here (checked against its {overlap['source']})")


def _gain_header(m: ModelResult, metric: GainMetric) -> str:
    """"PSNR std (dB) vs biharmonic": the metric and the fill its gain is over."""
    unit = " (dB)" if metric.key.endswith("psnr") else " (% points)" if metric.key == "identity_same" else ""
    return f"{_short_name(metric.key)}{unit} vs {m.gains['baselines'][metric.key]}"


def _best_classical_section(ev: Evaluation) -> list[str]:
    """The headline: the best classical fill per metric, and each model's gain over it per bucket."""
    if not ev.best_classical:
        models = [m for m in ev.models if m.info.get("kind") != "baseline"]
        return ["## Against the best classical fill", "", f"Unavailable: {ev.gain_reason}", ""] if models and ev.gain_reason else []
    lines = ["## Best classical fill per metric", "",
             "No single classical fill is the bar: per metric, the scored classical fill with the best *Average*. "
             "Each model's gain is over that fill, on the identical pairs (positive = better than the fill; for "
             "LPIPS and L1: fill − model).", ""]
    body = [[f"{_short_name(key)} {'↑' if METRIC_BY_KEY[key].higher_is_better else '↓'}", entry["baseline"],
             _fmt(key, entry["average"])] for key, entry in ev.best_classical.items()]
    lines += _md_table(["Metric", "Best classical fill", "Its average"], body) + [""]
    for m in ev.models:
        buckets = m.gains.get("buckets") if m.gains else None
        if not buckets:
            continue
        shown = [x for x in GAIN_METRICS if any(x.key in row for row in buckets.values())]
        lines += [f"### {m.name}: gain over the best classical fill per hole-ratio bucket", ""]
        body = [[label] + [x.fmt.format(row[x.key]) if x.key in row else "–" for x in shown] for label, row in buckets.items()]
        lines += _md_table(["Hole ratio"] + [_gain_header(m, x) for x in shown], body) + [""]
    return lines


def _gain_section(ev: Evaluation) -> list[str]:
    """Per model, the gain over the best classical fill in each race × gender cell, with intervals."""
    with_gains = [m for m in ev.models if m.gains.get("cells")]
    if not with_gains:
        if ev.gain_reason and any(m.demographics for m in ev.models):
            return ["## Fairness as gain over the best classical fill", "", f"Unavailable: {ev.gain_reason}", ""]
        return []
    first = with_gains[0].gains
    lines = ["## Fairness as gain over the best classical fill (eval_balanced, race × gender)", "",
             f"Raw per-group numbers mostly measure the faces (the classical fill spreads too), so this is each "
             f"model's gain over the best classical fill of each metric (named in the column) on the identical "
             f"pairs: positive = better than the fill, for LPIPS and L1 too (fill − model). Mean of per-face "
             f"differences, [{first['confidence']:.0%} interval] from a paired bootstrap over faces "
             f"({first['resamples']} resamples, seed {first['seed']}). ⚠ marks cells with fewer than "
             f"{first['min_faces']} faces. *Spread* is the gap between the largest and the smallest gain.", ""]
    for m in with_gains:
        cells = m.gains["cells"]
        shown = [x for x in GAIN_METRICS if any(x.key in row for row in cells.values())]
        lines += [f"### {m.name}: gain over the best classical fill per race × gender cell", ""]
        body = _group_rows("race_gender", cells, lambda row: [str(row["n"])] + [_gain_cell(x, row.get(x.key)) for x in shown],
                           len(shown), flag=lambda row: " ⚠" if row["few_faces"] else "")
        spreads = m.gains["spread"]
        for label, cell_key, gain_key in (("**largest gain**", "best", "best_gain"), ("**smallest gain**", "worst", "worst_gain")):
            body.append([label, ""] + [f"{spreads[x.key][cell_key]} ({x.fmt.format(spreads[x.key][gain_key])})"
                                       if x.key in spreads else "–" for x in shown])
        body.append(["**spread (largest − smallest)**", ""] + [
            x.fmt.format(spreads[x.key]["gap"]).lstrip("+") + (" ⚠" if spreads[x.key]["few_faces"] else "")
            if x.key in spreads else "–" for x in shown])
        lines += _md_table(["Cell", "Faces"] + [_gain_header(m, x) for x in shown], body) + [""]
    return lines


def _group_rows(kind: str, table: Mapping[str, Mapping[str, Any]], cells: Callable[[Mapping[str, Any]], list[str]],
                width: int, flag: Callable[[Mapping[str, Any]], str] = lambda row: "") -> list[list[str]]:
    """One row per group of ``kind`` in label order, a group without faces included and named
    ("no faces") rather than left out: an empty cell is a finding about the data, not noise."""
    order = group_orders()[kind]
    rows = []
    for group in order:
        if group in table:
            rows.append([group + flag(table[group])] + cells(table[group]))
        elif UNKNOWN not in group.split():
            rows.append([group, "0", "no faces"] + [""] * (width - 1))
    rows += [[group + flag(row)] + cells(row) for group, row in table.items() if group not in order]
    return rows


_SHORT = {"ref_l1": "L1 ref", "ref_psnr": "PSNR ref", "std_l1": "L1 std", "std_hole_l1": "hole L1 std",
          "std_psnr": "PSNR std", "std_ssim": "SSIM", "std_lpips": "LPIPS", "identity_distance": "ID dist",
          "identity_same": "same person"}


def _short_name(key: str) -> str:
    return _SHORT.get(key, key)


def _clean(value: Any) -> Any:
    """JSON has no NaN: unavailable values become null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def to_json(ev: Evaluation) -> dict[str, Any]:
    return _clean({
        "format": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "protocol": ev.protocol,
        "metrics": {m.key: {"title": m.title, "convention": m.convention, "higher_is_better": m.higher_is_better}
                    for m in METRICS},
        "lpips": {"available": not ev.lpips_reason, "reason": ev.lpips_reason or None},
        "identity": {"available": not ev.identity_reason, "reason": ev.identity_reason or None,
                     "threshold": SAME_PERSON_THRESHOLD},
        "best_classical": ev.best_classical,
        "models": [{"name": m.name, "source": m.source, **m.info, "buckets": m.buckets,
                    "demographics": m.demographics, "spreads": m.spreads,
                    **({"gain_over_best_classical": m.gains} if m.gains else {}),
                    **({"training_overlap": m.training_overlap} if m.training_overlap else {}),
                    **({"non_finite_outputs": {**m.non_finite, "reason": NON_FINITE_REASON}} if m.non_finite else {})}
                   for m in ev.models],
        **({"gain_reason": ev.gain_reason} if ev.gain_reason else {}),
        **ev.extra,
    })


def to_csv(ev: Evaluation) -> str:
    """Long format: model, split, grouping, group, pairs, metric, convention, value."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", "split", "grouping", "group", "pairs", "metric", "convention", "value"])
    for m in ev.models:
        blocks = [("test", "bucket", m.buckets)] + [("eval_balanced", kind, t) for kind, t in m.demographics.items()]
        for split, grouping, table in blocks:
            for group, row in table.items():
                for metric in METRICS:
                    value = row.get(metric.key)
                    writer.writerow([m.name, split, grouping, group, row.get("n", ""), metric.key, metric.convention,
                                     "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.6g}"])
    return buf.getvalue()


def write_report(ev: Evaluation, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write the report files atomically (bucket_plot.png only when something was scored);
    returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        "metrics.json": write_text(out / "metrics.json", json.dumps(to_json(ev), indent=2) + "\n", newline=""),
        "metrics.csv": write_text(out / "metrics.csv", to_csv(ev), newline=""),
    }
    plot = write_bucket_plot([(m.name, m.buckets) for m in ev.models], out)
    if plot is not None:
        written[PLOT_NAME] = plot
    written["report.md"] = write_text(out / "report.md", render_markdown(ev, plot.name if plot else None), newline="")
    return written
