"""``dvc-monitor score``: score a CSV batch with the model a reference names."""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvc_monitor.production.loader import LoadedModel, load_version, open_repo, resolve, version_state


@dataclass(frozen=True)
class BatchScore:
    """The results of scoring one batch, and the version that scored it."""

    model: LoadedModel
    rows: int
    results: list
    output: str | None = None
    table: Any = field(default=None, repr=False)  # the input's columns plus the results

    def to_json(self) -> dict:
        from dvc_monitor.production.server import score_response

        return score_response(self.model, self.results)


def score_batch(ref: str, input: str, repo: str | Path = ".", output: str | None = None,
                cache_dir: str | Path | None = None) -> BatchScore:
    """Score the CSV ``input`` (``-``: stdin) with ``ref``; write ``output`` (input + results).

    The input is read and checked against the version's schema before its model file is
    read, so bad input is refused at once."""
    from dvc_monitor.production.scoring import fit_rows, score_fitted, with_results

    root = open_repo(repo, cache_dir)
    mv = resolve(root, ref)
    state = version_state(root, mv)
    frame = _read_csv(input)
    source = "stdin" if input == "-" else input
    rows = fit_rows(state.kind, state.config, frame, source, f"{mv.ref} ({state.kind})")
    loaded = load_version(root, mv, state)
    results = score_fitted(loaded, rows).results
    table = with_results(frame, loaded.kind, results)
    if output:
        from dvc_monitor.model.data import write_batch

        write_batch(table, output)
    return BatchScore(loaded, len(frame), results, output, table)


def _read_csv(input: str):
    from dvc_monitor.model.data import read_batch

    if input != "-":
        return read_batch(input)
    with tempfile.TemporaryDirectory(prefix="dvc-monitor-score-") as tmp:
        path = Path(tmp) / "stdin.csv"
        path.write_bytes(sys.stdin.buffer.read())
        return read_batch(path)
