"""Helpers shared by the model kinds: stable holdout split, deterministic JSON/CSV output."""

from __future__ import annotations

import hashlib
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np


def stable_fraction(keys) -> np.ndarray:
    """Map each key to a number in [0, 1) that depends on the key only (not on run or order)."""
    out = np.empty(len(keys))
    for i, key in enumerate(keys):
        digest = hashlib.sha256(str(key).encode()).digest()
        out[i] = int.from_bytes(digest[:8], "big") / 2**64
    return out


def hash_holdout(row_keys, fraction: float) -> np.ndarray:
    """Boolean mask of holdout rows: a row's membership never changes as batches are added."""
    if not 0 < fraction < 1:
        raise ValueError("holdout_fraction must be between 0 and 1")
    return stable_fraction(row_keys) < fraction


def clean_number(value: Any, digits: int = 6) -> Any:
    """Round floats for stable, readable JSON; NaN/inf become None."""
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if math.isnan(value) or math.isinf(value):
            return None
        return round(value, digits)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {k: clean_number(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_number(v, digits) for v in value]
    return value


def write_json(path: str | Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(clean_number(data), indent=2, sort_keys=True) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_csv(path: str | Path, frame) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")
    tmp.replace(path)


def feature_stats(df, columns) -> dict:
    """Small per-column summary kept in split.json (for drift checks and reports)."""
    stats = {}
    for col in columns:
        values = df[col].to_numpy(dtype=float)
        stats[col] = {
            "mean": float(np.mean(values)),
            "std": float(np.std(values)),
            "min": float(np.min(values)),
            "max": float(np.max(values)),
        }
    return stats


def labels_of(df, config):
    """The label column as ints, or None when the data carries no (complete) labels."""
    if not config.label or config.label not in df.columns or df[config.label].isna().any():
        return None
    return df[config.label].to_numpy(dtype=int)


def thin(frame, points: int = 200):
    """At most ``points`` evenly spaced rows of a curve (plots stay small in git)."""
    if len(frame) <= points:
        return frame
    idx = np.unique(np.linspace(0, len(frame) - 1, points).astype(int))
    return frame.iloc[idx].reset_index(drop=True)


# -- window sums: what a window measure is made of, added up exactly --------------------

EXACT_BLOCK = 1 << 24  # values summed per block: every partial sum stays below 2**53


def exact_sum(values) -> "Fraction | float":
    """The exact sum of float ``values`` (a ``Fraction``), so that sums of parts add up to
    the sum of the whole whatever the split: a window measured in pieces (on a cluster)
    equals the window measured at once. Each value is split into two integer halves of
    its mantissa per binary exponent; those add up exactly in doubles. Non-finite values
    give their float sum (NaN or infinite)."""
    x = np.asarray(values, dtype=float).ravel()
    if not np.isfinite(x).all():
        return float(np.sum(x))
    total = Fraction(0)
    for start in range(0, len(x), EXACT_BLOCK):
        mant, exp = np.frexp(x[start:start + EXACT_BLOCK])
        q = (mant * 2.0 ** 53).astype(np.int64)  # exact: 53 bits of mantissa
        exps, which = np.unique(exp, return_inverse=True)
        hi = np.bincount(which, weights=(q >> 26).astype(float))
        lo = np.bincount(which, weights=(q & ((1 << 26) - 1)).astype(float))
        for e, h, low in zip(exps.tolist(), hi.tolist(), lo.tolist()):
            total += Fraction((int(h) << 26) + int(low)) * Fraction(2) ** (e - 53)
    return total


def add_sums(a: dict, b: dict) -> dict:
    """Two windows' sums (``Kind.window_sums``) added key by key; None (not measurable,
    e.g. no labels) stays None."""
    return {k: None if a.get(k) is None or b.get(k) is None else a[k] + b[k]
            for k in dict.fromkeys([*a, *b])}


def ratio(total, n) -> float | None:
    """``total / n`` as a float (correctly rounded from exact sums); None when ``n`` is 0
    or ``total`` is None."""
    if total is None or not n:
        return None
    return float(Fraction(total) / n) if not isinstance(total, float) else total / n
