"""``--engine dask``: scoring and watching on a real two-process Dask cluster gives what
one process gives, with one model load per worker and one version for the whole job."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.monitoring import ANOMALY
from tests.support.production import MODELS
from tests.support.repos import BIN

RISK, FORECAST = MODELS["risk"], MODELS["forecast"]


def batch(kind: str, indices, change=None):
    """Sample batches ``indices`` of ``kind``, one frame."""
    import pandas as pd

    from dvc_monitor.kinds import kind_for

    frame = pd.concat([kind_for(kind).sample_batch(i, seed=0) for i in indices],
                      ignore_index=True)
    return frame if change is None else change(frame)


def write_csv(path: Path, frame) -> Path:
    from dvc_monitor.model.data import write_batch

    write_batch(frame, path)
    return path


def partitions(path: Path, n: int):
    """``path`` (CSV) as a Dask DataFrame of about ``n`` partitions."""
    import dask.dataframe as dd

    return dd.read_csv(str(path), blocksize=max(1, path.stat().st_size // n),
                       assume_missing=True)


def results(table, kind: str):
    from dvc_monitor.kinds import kind_for

    fields = [f for f in kind_for(kind).result_fields if f in table.columns]
    return table[fields].reset_index(drop=True)


@pytest.mark.parametrize("kind, name, fixture", [("anomaly", ANOMALY, "anomaly"),
                                                 ("risk", RISK, "kinds")])
def test_score_equals_one_process_with_one_load_per_worker(kind, name, fixture, request,
                                                           dask_client, tmp_path):
    import pandas as pd

    from dvc_monitor import api
    from dvc_monitor.integrations.dask import plan_score, worker_loads

    repo = request.getfixturevalue(fixture)
    csv = write_csv(tmp_path / "in.csv", batch(kind, range(5, 9)))
    single = api.score(repo.path, f"{name}#prod", str(csv))
    job = plan_score(partitions(csv, 6), f"{name}#prod", repo.path)
    assert job.partitions >= 4
    scored = job.frame.compute()
    pd.testing.assert_frame_equal(results(scored, kind), results(single.table, kind))
    assert job.model.version == single.model.version == "v1.0.0"
    loads = worker_loads(dask_client, job.model.md5)
    assert len(loads) == 2 and set(loads.values()) <= {0, 1} and sum(loads.values()) >= 1


def watch_json(result) -> dict:
    doc = result.to_json()
    doc.pop("seconds", None)
    return doc


def test_watch_equals_one_process_through_an_alarm_and_its_candidates(anomaly, dask_client,
                                                                      tmp_path):
    """Drifted windows raise an alarm; the candidates are judged on the alarm's windows,
    read back from the cluster: the whole result is the one-process result."""
    from dvc_monitor import api
    from dvc_monitor.integrations.dask import watch_dask

    live = batch("anomaly", range(10, 14))
    drifted = batch("anomaly", range(14, 17), lambda f: f.assign(
        amount=f["amount"] * 4, distance_from_home=f["distance_from_home"] * 5))
    import pandas as pd

    csv = write_csv(tmp_path / "live.csv", pd.concat([live, drifted], ignore_index=True))
    single = api.watch(anomaly.path, f"{ANOMALY}#prod", csv, window=700)
    spread = watch_dask(partitions(csv, 5), f"{ANOMALY}#prod", anomaly.path, window=700,
                        name="live.csv")
    assert watch_json(spread) == watch_json(single)
    assert single.decision != "ok" and any(w.breaches for w in single.windows)


def test_watch_risk_with_labels_equals_one_process(kinds, dask_client, tmp_path):
    """A risk model's windows carry labels (Brier, exact sums); one window's label has a
    gap in one partition only: that whole window is unlabelled, as in one process."""
    from dvc_monitor import api
    from dvc_monitor.integrations.dask import watch_dask

    frame = batch("risk", range(1, 4))
    label = "malignant"
    assert label in frame.columns
    frame.loc[len(frame) - 3, label] = None  # the last window is unlabelled
    csv = write_csv(tmp_path / "risk.csv", frame)
    window = len(frame) // 3
    single = api.watch(kinds.path, f"{RISK}#prod", csv, window=window)
    spread = watch_dask(partitions(csv, 7), f"{RISK}#prod", kinds.path, window=window,
                        name="risk.csv")
    assert watch_json(spread) == watch_json(single)
    measured = [w.measures for w in single.windows if w.measures]
    assert measured[0].get("brier") is not None and measured[-1].get("brier") is None


def test_forecast_is_refused_in_one_line(kinds, tmp_path):
    csv = write_csv(tmp_path / "f.csv", batch("forecast", [5]))
    for args in (["score", f"{FORECAST}#prod", str(csv), "-o", str(tmp_path / "out")],
                 ["watch", f"{FORECAST}#prod", "--data", str(csv)]):
        proc = kinds.dm(*args, "--engine", "dask", "--workers", "1", check=False)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert "without --engine dask" in lines[-1] and "Traceback" not in proc.stderr


def test_cli_scores_parquet_on_a_running_scheduler_with_the_version_it_resolved(
        anomaly, dask_client, tmp_path):
    import pandas as pd

    from dvc_monitor import api

    frame = batch("anomaly", range(5, 8))
    folder = tmp_path / "in"
    folder.mkdir()
    for i, part in enumerate([frame.iloc[:900], frame.iloc[900:]]):
        part.to_parquet(folder / f"p{i}.parquet", index=False)
    out = tmp_path / "out"
    proc = anomaly.dm("score", f"{ANOMALY}#prod", str(folder), "--engine", "dask",
                      "--scheduler", dask_client.scheduler.address, "-o", str(out))
    assert "with fraud-detector@v1.0.0" in proc.stderr
    written = pd.read_parquet(out)
    assert sorted(p.name for p in out.iterdir())[0] == "_dvc_monitor.json"
    assert json.loads((out / "_dvc_monitor.json").read_text())["version"] == "v1.0.0"
    single = api.score(anomaly.path, f"{ANOMALY}#prod",
                       str(write_csv(tmp_path / "in.csv", frame)))
    pd.testing.assert_frame_equal(results(written, "anomaly"), results(single.table, "anomaly"))
    # -o OUT.csv: one CSV file, byte for byte what one process writes
    anomaly.dm("score", f"{ANOMALY}#prod", str(folder), "--engine", "dask",
               "--scheduler", dask_client.scheduler.address, "-o", str(tmp_path / "out.csv"))
    anomaly.dm("score", f"{ANOMALY}#prod", str(tmp_path / "in.csv"), "-o",
               str(tmp_path / "single.csv"))
    assert (tmp_path / "out.csv").read_bytes() == (tmp_path / "single.csv").read_bytes()


def test_a_stage_moved_during_the_job_does_not_change_the_version(anomaly, dask_client,
                                                                  tmp_path):
    """The job is planned (the reference resolved) before prod moves to v1.1.0 and runs
    after: every row is scored by v1.0.0."""
    import pandas as pd

    from dvc_monitor import api
    from dvc_monitor.integrations.dask import plan_score
    from tests.support.monitoring import release
    from tests.support.repos import copy_repo, new_version

    repo = copy_repo(anomaly, tmp_path / "moved")
    csv = write_csv(tmp_path / "in.csv", batch("anomaly", range(5, 7)))
    job = plan_score(partitions(csv, 4), f"{ANOMALY}#prod", repo.path)
    new_version(repo, tmp_path, ANOMALY, "anomaly", param=("contamination", "0.3"))
    release(repo, ANOMALY, "v1.1.0", "prod")
    scored = job.frame.compute()
    before = api.score(repo.path, f"{ANOMALY}@v1.0.0", str(csv))
    after = api.score(repo.path, f"{ANOMALY}#prod", str(csv))
    assert after.model.version == "v1.1.0" and job.model.version == "v1.0.0"
    pd.testing.assert_frame_equal(results(scored, "anomaly"), results(before.table, "anomaly"))
    assert not results(scored, "anomaly").equals(results(after.table, "anomaly"))


# Uninstalling Dask is not possible in the shared test environment, so this fakes a
# missing package: a meta path finder that refuses to import ``dask`` and ``distributed``.
BLOCK_DASK = """
import sys
class NoDask:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("dask", "distributed"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoDask())
from dvc_monitor.cli import main
sys.argv[0] = "dvc-monitor"
raise SystemExit(main())
"""


def test_engine_dask_without_dask_says_how_to_install_it(anomaly, tmp_path):
    csv = write_csv(tmp_path / "in.csv", batch("anomaly", [5]))
    proc = subprocess.run([str(BIN / "python"), "-c", BLOCK_DASK, "score", f"{ANOMALY}#prod",
                           str(csv), "--engine", "dask", "-o", str(tmp_path / "out")],
                          cwd=anomaly.path, env=anomaly.env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "pip install 'dvc-monitor[dask]'" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_failing_partition_is_named_in_one_line(anomaly, dask_client):
    """A text value in the third partition only: the error names that partition."""
    import dask.dataframe as dd

    from dvc_monitor.errors import SchemaError
    from dvc_monitor.integrations.dask import score_dask

    frame = batch("anomaly", [5]).astype({"amount": object})
    frame.loc[len(frame) - 2, "amount"] = "twelve"
    scored = score_dask(dd.from_pandas(frame, npartitions=3, sort=False), f"{ANOMALY}#prod",
                        anomaly.path, source="batch")
    with pytest.raises(SchemaError) as err:
        scored.compute()
    message = str(err.value)
    assert message.startswith("partition 2 of batch") and "\n" not in message
    assert "'twelve'" in message
