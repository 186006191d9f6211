"""``watch --data FILE --window N`` reads the file in chunks (``monitoring.streaming``):
the result is the one of the same windows read whole, through an alarm and the
candidates judged on its streak, and for a risk model's labels split across chunks."""

from __future__ import annotations

import pandas as pd

from tests.support.production import MODELS
from tests.support.rollback import MODEL as ANOMALY

RISK = MODELS["risk"]


def batch(kind: str, indices, change=None) -> pd.DataFrame:
    from dvc_monitor.kinds import kind_for

    frame = pd.concat([kind_for(kind).sample_batch(i, seed=0) for i in indices],
                      ignore_index=True)
    return frame if change is None else change(frame)


def whole_and_file(tmp_path, name: str, frame: pd.DataFrame, write):
    """``(folder, file)``: a folder whose one file is read whole (a window per N rows of
    each file), and the same file on its own (read in chunks)."""
    folder = tmp_path / "whole"
    folder.mkdir()
    write(frame, folder / name)
    alone = tmp_path / name
    write(frame, alone)
    return folder, alone


def as_json(result) -> dict:
    doc = result.to_json()
    doc.pop("seconds", None)
    return doc


def test_streamed_watch_equals_whole_through_an_alarm_and_its_candidates(anomaly_repo,
                                                                         tmp_path):
    """Drifted windows raise an alarm on v1.2.0; v1.1.0 and v1.0.0 are judged on the
    streak's windows, read back from the file: the whole result is the in-memory one,
    with chunks that cut windows anywhere, from plain and compressed CSV and Parquet."""
    from dvc_monitor import api
    from dvc_monitor.monitoring.streaming import StreamingWindows

    live = batch("anomaly", range(10, 13))
    drifted = batch("anomaly", range(13, 16), lambda f: f.assign(
        amount=f["amount"] * 4, distance_from_home=f["distance_from_home"] * 5))
    frame = pd.concat([live, drifted], ignore_index=True)
    folder, csv = whole_and_file(tmp_path, "live.csv", frame,
                                 lambda f, p: f.to_csv(p, index=False))
    ref = f"{ANOMALY}#prod"
    whole = as_json(api.watch(anomaly_repo.path, ref, folder, window=700))
    assert whole["decision"] != "ok" and whole["candidates"]
    for chunk_rows in (97, 700, 5000):
        streamed = api.watch(anomaly_repo.path, ref, StreamingWindows(csv, chunk_rows),
                             window=700)
        assert as_json(streamed) == whole, chunk_rows
    parquet, gz = tmp_path / "live.parquet", tmp_path / "live.csv.gz"
    frame.to_parquet(parquet)
    frame.to_csv(gz, index=False)
    for data in (parquet, gz):  # watch streams a single file by itself
        doc = as_json(api.watch(anomaly_repo.path, ref, data, window=700))
        names = [w.pop("window") for w in doc["windows"]]
        assert names[0] == f"{data.name}[0:700]"
        assert doc["windows"] == [{k: v for k, v in w.items() if k != "window"}
                                  for w in whole["windows"]]


def test_streamed_watch_of_risk_labels_equals_whole(kinds_repo, tmp_path):
    """Brier from labels summed over chunks; the last window's label has one gap, in
    one chunk only: that whole window is unlabelled, as when read whole."""
    from dvc_monitor import api
    from dvc_monitor.monitoring.streaming import StreamingWindows

    frame = batch("risk", range(1, 4))
    frame.loc[len(frame) - 3, "malignant"] = None
    window = len(frame) // 3
    folder, csv = whole_and_file(tmp_path, "risk.csv", frame,
                                 lambda f, p: f.to_csv(p, index=False))
    ref = f"{RISK}#prod"
    whole = as_json(api.watch(kinds_repo.path, ref, folder, window=window))
    measured = [w["measures"] for w in whole["windows"] if w["measures"]]
    assert measured[0].get("brier") is not None and measured[-1].get("brier") is None
    streamed = api.watch(kinds_repo.path, ref, StreamingWindows(csv, window // 3 + 1),
                         window=window)
    assert as_json(streamed) == whole
    labelled = api.watch(kinds_repo.path, ref, StreamingWindows(csv, 41), window=window,
                         labels="malignant")
    assert as_json(labelled) == as_json(api.watch(kinds_repo.path, ref, folder,
                                                  window=window, labels="malignant"))


def test_streamed_watch_refuses_a_missing_column_in_one_line(anomaly_repo, tmp_path):
    csv = tmp_path / "bad.csv"
    batch("anomaly", [10]).drop(columns="amount").to_csv(csv, index=False)
    proc = anomaly_repo.dm("watch", f"{ANOMALY}#prod", "--data", str(csv), "--window", "500",
                           check=False)
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1, proc.stderr
    assert "amount" in proc.stderr and "bad.csv" in proc.stderr
