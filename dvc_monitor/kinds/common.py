"""Helpers shared by the model kinds: stable holdout split, deterministic JSON/CSV output."""

from __future__ import annotations

import hashlib
import json
import math
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
