"""The report's findings as sentences, from paired comparisons only (workflows.analysis): a value
is compared with its baseline within pairs of rows whose other settings are equal, so no claim
mixes one (content, style) pair's numbers with another's."""

from __future__ import annotations

import math

import pandas as pd

from workflows.analysis import WEIGHT_PARAMS, frontier, order, paired_effects, pairs_of, text
from workflows.targets import LEVEL, paired_speed

WORDS = {"content": "content loss", "style": "style loss", "total": "total"}


def param_findings(results: pd.DataFrame, param: str) -> list[str]:
    """Sentences about one swept parameter: a frontier for a loss weight (a trade-off has no
    winner), paired effects and the winner by paired yardstick total for anything else."""
    found = _tradeoff(results, param) if param in WEIGHT_PARAMS else _effects(results, param)
    return found + _baselines(results, param) + _unpaired(results, param)


def percent(change: float) -> str:
    """A geometric-mean change in words: −0.042 → "4.2% lower", 0.051 → "5.1% higher"."""
    if not math.isfinite(change):
        return "no ratio"
    return f"{abs(change):.1%} {'lower' if change < 0 else 'higher'}"


def _effects(results: pd.DataFrame, param: str) -> list[str]:
    effects = paired_effects(results, param)
    if effects.empty or not effects["pairs"].any():
        return [f"{param}: no value has a baseline row with the same other settings to compare."]
    out = []
    for row in effects[effects["pairs"] > 0].itertuples():
        n = row.pairs
        parts = [
            f"yardstick {WORDS[m]} lower in {getattr(row, f'{m}_better')} of {n} pairs "
            f"(geometric mean {percent(getattr(row, f'{m}_change'))})"
            for m in ("style", "content", "total")
        ]
        out.append(
            f"{param}={row.value} vs {param}={row.baseline}: {'; '.join(parts)}; raw final total "
            f"{percent(row.raw_total_change)} (each row's own objective)."
        )
    best = effects[effects["pairs"] > 0].sort_values("total_change").iloc[0]
    how = (f"{percent(best['total_change'])} than {best['baseline']}, lower in "
           f"{best['total_better']} of {best['pairs']} pairs")  # fmt: skip
    if best["total_change"] < 0 and 2 * best["total_better"] > best["pairs"]:
        out.append(f"{param}: best by paired yardstick total is {best['value']} ({how}).")
    else:
        out.append(
            f"{param}: no value lowered the paired yardstick total of {best['baseline']} in most "
            f"pairs (closest: {best['value']}, {how})."
        )
    return out


def _tradeoff(results: pd.DataFrame, param: str) -> list[str]:
    points = frontier(results, param)
    if points.empty:
        return [f"{param}: no pair has two of its values to compare."]
    pairs = points.groupby("value")["pair"].nunique()
    on = points[points["on_frontier"]].groupby("value")["pair"].nunique()
    values = sorted(pairs.index, key=order)
    front = [f"{v} (in {on.get(v, 0)} of {pairs[v]} pairs)" for v in values if on.get(v, 0)]
    behind = [f"{v} (in {pairs[v] - on.get(v, 0)} of {pairs[v]})" for v in values
              if on.get(v, 0) < pairs[v]]  # fmt: skip
    sentence = (
        f"{param} trades yardstick content loss against style loss, so it has no single best "
        f"value: on the frontier {', '.join(front) or 'none'}"
    )
    return [sentence + (f"; dominated {', '.join(behind)}." if behind else ".")]


def _baselines(results: pd.DataFrame, param: str) -> list[str]:
    """A sentence when pairs are compared with different baselines (each pair's own)."""
    rows = pairs_of(results, param)
    paired = rows[rows["role"] == "baseline"].drop_duplicates("pair")
    counts = paired["pair_baseline"].value_counts()
    if len(counts) < 2:
        return []
    each = ", ".join(f"{param}={v} in {counts[v]}" for v in sorted(counts.index, key=order))
    return [
        f"{param}: the baseline is each pair's own — the default where the pair has it, else "
        f"its first value ({each} pairs)."
    ]


def _unpaired(results: pd.DataFrame, param: str) -> list[str]:
    rows = pairs_of(results, param)
    lone = rows[rows["role"] == "unpaired"]
    if lone.empty:
        return []
    values = ", ".join(sorted({text(v) for v in lone[param]}, key=order))
    rows_text = "1 row" if len(lone) == 1 else f"{len(lone)} rows"
    return [
        f"{param}: {rows_text} ({param} {values}) without a row of another {param} and the "
        "same other settings: left out of these comparisons (unpaired)."
    ]


def speed_findings(results: pd.DataFrame, targets: pd.DataFrame, param: str) -> list[str]:
    """Per value against its baseline: how often it came within LEVEL of its objective's
    best in fewer iterations and in less time than the baseline did in the same pair
    (workflows.targets.paired_speed). For a value that changes the objective (a weight, the
    layers, the size …) each is measured against its own objective's best."""
    speed = paired_speed(results, targets, param)
    out = []
    for row in speed.itertuples():
        n = row.pairs
        few = f"{abs(row.iterations_change):.1%} {'fewer' if row.iterations_change < 0 else 'more'}"
        less = f"{abs(row.seconds_change):.1%} {'less' if row.seconds_change < 0 else 'more'}"
        out.append(
            f"{param}={row.value} vs {param}={row.baseline}: within {LEVEL:.0%} of its "
            f"objective's best in {row.reached} of {n} pairs (the baseline in "
            f"{row.baseline_reached}); sooner than the baseline in iterations in "
            f"{row.iterations_faster} of {n} pairs, later in {row.iterations_slower}"
            + (f" ({few} where both got there)" if math.isfinite(row.iterations_change) else "")
            + f"; in seconds sooner in {row.seconds_faster} of {n}"
            + (f" ({less} time)" if math.isfinite(row.seconds_change) else "")
            + "."
        )
    return out
