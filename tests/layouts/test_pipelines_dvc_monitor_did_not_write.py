"""Review, registry and rollback on repository layouts dvc-monitor did not write.

Two repositories, built once for the module with real git, DVC and training:

* ``moved``: a dvc-monitor anomaly model whose folder was moved from ``models/fraud`` to
  ``ml/fraud`` and whose training stage was renamed ``train`` -> ``fit``;
* ``started``: a root-level pipeline shaped like DVC's get-started project (prepare ->
  featurize -> train -> evaluate, a pickled ``model.pkl`` under ``artifacts:``, metrics
  in a DVC output). Its pickle is planted: unpickling it would create a file, which must
  never appear.

Commands run from the root, from a subfolder and with ``-C``.
"""

from __future__ import annotations

import json

import pytest

from tests.support.layouts import build_started
from tests.support.repos import Repo, copy_repo, init_model, new_repo

@pytest.fixture(scope="module")
def started(tmp_path_factory):
    return build_started(tmp_path_factory.mktemp("started"))


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """A dvc-monitor model moved to ml/fraud with its train stage renamed fit."""
    base = tmp_path_factory.mktemp("moved")
    repo = init_model(new_repo(base), "anomaly", "fraud")
    (repo.path / "ml").mkdir()
    repo.run("mv", "models/fraud", "ml/fraud")  # with its DVC-tracked data
    root = repo.path / "dvc.yaml"
    root.write_text(root.read_text().replace("models/fraud/", "ml/fraud/"))
    for f in ("dvc.yaml", "dvc.lock"):
        p = repo.path / "ml" / "fraud" / f
        p.write_text(p.read_text().replace("\n  train:\n    cmd:", "\n  fit:\n    cmd:"))
    repo.commit_all("Move the model, rename its training stage")
    repo.dm("register", "fraud", "--version", "v1.0.0")
    params = repo.path / "ml" / "fraud" / "params.yaml"
    params.write_text(params.read_text().replace("n_estimators: 100", "n_estimators: 5"))
    repo.dvc("repro", "ml/fraud/dvc.yaml")
    repo.commit_all("Fewer trees")
    repo.dm("register", "fraud", "--version", "v1.1.0")
    (repo.path / "ml" / "fraud" / "notes").mkdir()
    return repo


def where(repo: Repo, how: str) -> dict:
    """Run from the root, from a subfolder, or with -C from outside."""
    if how == "root":
        return {"cwd": repo.path, "pre": []}
    if how == "subfolder":
        sub = repo.path / "src" if (repo.path / "src").is_dir() else repo.path / "ml" / "fraud"
        return {"cwd": sub, "pre": []}
    return {"cwd": repo.path.parent, "pre": ["-C", str(repo.path)]}


def dm(repo: Repo, how: str, *args: str, check: bool = False):
    w = where(repo, how)
    return repo.dm(*w["pre"], *args, cwd=w["cwd"], check=check)


def one_line_error(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dvc-monitor: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


HOW = ["root", "subfolder", "C"]


# -- the get-started layout, with a planted pickle ---------------------------------------


@pytest.mark.parametrize("how", HOW)
def test_started_report_reviews_what_it_can(started, how):
    proc = dm(started, how, "report", "model", "--base", "HEAD~1", "--head", "HEAD")
    assert proc.returncode == 0, proc.stderr
    md = proc.stdout
    assert "### What changed" in md and "### Metrics" in md and "### Skipped" in md
    assert "train.n_est" in md  # the params change
    assert "src/train.py" not in md or "changed" in md
    assert "| auc | 0.55 | 0.59 |" in md  # metrics read from the DVC output in the cache
    assert "model.pkl is a pickle: not loaded" in md
    assert "cannot decide" in md
    assert not started.marker.exists()


def test_started_report_json_lists_skipped(started):
    out = json.loads(dm(started, "root", "report", "model", "--base", "HEAD~1", "--head",
                        "HEAD", "--json", check=True).stdout)
    assert out["kind"] == "external" and out["same_data"] is None
    assert any("pickle: not loaded" in s for s in out["skipped"])
    assert {m["metric"]: m["head"] for m in out["metrics"]}["auc"] == 0.59
    assert not started.marker.exists()


def test_started_metrics_not_in_cache_are_named(started, tmp_path):
    repo = copy_repo(started, tmp_path)
    lock = repo.git("show", "HEAD~1:dvc.lock").stdout
    md5 = lock.split("path: eval/metrics.json")[1].split("md5: ")[1].split()[0]
    (repo.path / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).unlink()
    md = repo.dm("report", "model", "--base", "HEAD~1", "--head", "HEAD").stdout
    assert "metrics are in a DVC output that is not in the cache (eval/metrics.json)" in md
    assert "| auc | – | 0.59 |" in md


@pytest.mark.parametrize("how", HOW)
def test_started_gate_cannot_decide(started, how):
    proc = dm(started, how, "gate", "model", "--base", "HEAD~1", "--head", "HEAD")
    assert proc.returncode == 6, proc.stderr
    assert "cannot decide" in one_line_error(proc)
    assert not started.marker.exists()


@pytest.mark.parametrize("how", HOW)
def test_started_compare_refuses(started, how):
    proc = dm(started, how, "compare", "model", "v1.0.0", "v1.1.0")
    assert proc.returncode != 0
    line = one_line_error(proc)
    assert "not a model dvc-monitor trained" in line and "pickle" in line
    assert not started.marker.exists()


@pytest.mark.parametrize("how", HOW)
def test_started_score_and_watch_refuse_as_serve_does(started, tmp_path, how):
    batch = tmp_path / "batch.csv"
    batch.write_text("x\n1\n2\n")
    before = started.snapshot()
    ref = "model@v1.1.0"
    procs = {" ".join(args): dm(started, how, *args, check=False) for args in (
        ("serve", ref, "--port", "0"),  # refuses before it listens
        ("score", ref, str(batch)),
        ("watch", ref, "--data", str(batch)),
        ("watch", ref, "--data", str(batch), "--rollback"),
    )}
    lines = {cmd: one_line_error(proc) for cmd, proc in procs.items()}
    assert {proc.returncode for proc in procs.values()} == {3}
    assert len(set(lines.values())) == 1, lines  # one refusal, word for word
    line = lines[f"score {ref} {batch}"]
    assert f"{ref} is not a model dvc-monitor trained (no monitor.yaml; model.pkl is a pickle" in line
    assert "dvc-monitor adopt NAME" in line and "dvc-monitor init" in line
    assert all(proc.stdout == "" for proc in procs.values())
    assert started.snapshot() == before
    assert not started.marker.exists()


@pytest.mark.parametrize("how", HOW)
def test_started_versions_and_diff(started, how):
    versions = json.loads(dm(started, how, "versions", "model", "--json", check=True).stdout)
    assert [v["version"] for v in versions][:2] in (["v1.1.0", "v1.0.0"], ["v1.0.0", "v1.1.0"])
    proc = dm(started, how, "diff", "model", "v1.0.0", "v1.1.0", check=True)
    assert "n_est" in proc.stdout
    assert not started.marker.exists()


def test_started_rollback_dry_run_never_unpickles(started):
    before = started.snapshot()
    proc = dm(started, "subfolder", "rollback", "model", "--to", "v1.0.0", "--dry-run")
    assert "Traceback" not in proc.stderr
    if proc.returncode != 0:
        one_line_error(proc)
    assert started.snapshot() == before
    assert not started.marker.exists()


# -- a moved model folder with a renamed training stage ----------------------------------


def test_moved_reader_finds_the_stage(moved):
    from dvc_monitor.model.revision import read_model

    m = read_model(moved.path / "ml", "fraud", "HEAD")
    assert (m.pipeline_dir, m.stage, m.model_path) == ("ml/fraud", "fit", "ml/fraud/model.skops")
    assert m.monitor == "ml/fraud/monitor.yaml" and m.loads_safely
    assert "ml/fraud/params.yaml" in m.params
    assert [f.path for f in m.metrics] == ["ml/fraud/metrics.json"]
    assert m.to_json()["gto_name"] == "fraud"


@pytest.mark.parametrize("how", HOW)
def test_moved_report(moved, how):
    proc = dm(moved, how, "report", "fraud", "--base", "fraud@v1.0.0", "--head", "fraud@v1.1.0")
    assert proc.returncode == 0, proc.stderr
    md = proc.stdout
    assert "### Both models on the same data" in md and "### What changed" in md
    assert "n_estimators" in md and "### Skipped" not in md


@pytest.mark.parametrize("how", HOW)
def test_moved_gate(moved, how):
    proc = dm(moved, how, "gate", "fraud", "--base", "fraud@v1.0.0", "--head", "fraud@v1.1.0")
    assert proc.returncode in (0, 5), proc.stderr  # decided: passed or failed, never undecided
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("how", ["subfolder", "C"])
def test_moved_compare(moved, how):
    out = json.loads(dm(moved, how, "compare", "fraud", "v1.0.0", "v1.1.0", "--json",
                        check=True).stdout)
    assert [v["version"] for v in out["versions"]] == ["v1.0.0", "v1.1.0"]


def test_moved_versions_diff_rollback(moved):
    versions = json.loads(dm(moved, "subfolder", "versions", "fraud", "--json", check=True).stdout)
    assert {v["version"] for v in versions} == {"v1.0.0", "v1.1.0"}
    assert "n_estimators" in dm(moved, "C", "diff", "fraud", "v1.0.0", "v1.1.0", check=True).stdout
    before = moved.snapshot()
    proc = dm(moved, "subfolder", "rollback", "fraud", "--to", "v1.0.0", "--dry-run", check=True)
    assert "v1.0.0" in proc.stdout
    assert moved.snapshot() == before


# -- bad input: one line, non-zero, repository unchanged ---------------------------------


BAD_INPUT = {
    "not valid YAML": ("dvc.yaml", lambda t: t + "\n  - : [unclosed\n"),
    "declared but no stage": ("dvc.yaml", lambda t: t.replace("path: model.pkl",
                                                              "path: nowhere.pkl")),
    "two stages claim": ("dvc.yaml", lambda t: t.replace("      - eval/metrics.json",
                                                         "      - eval/metrics.json\n"
                                                         "    outs:\n      - model.pkl")),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_a_broken_pipeline_file_is_a_one_line_error_and_changes_nothing(started, tmp_path, case):
    repo = copy_repo(started, tmp_path)
    rel, edit = BAD_INPUT[case]
    p = repo.path / rel
    p.write_text(edit(p.read_text()))
    repo.commit_all(f"break: {case}")
    before = repo.snapshot()
    for args in (["report", "model", "--base", "HEAD~1", "--head", "HEAD"],
                 ["gate", "model", "--base", "HEAD~1", "--head", "HEAD"]):
        proc = repo.dm(*args, check=False)
        assert proc.returncode not in (0, 5, 6), (args, proc.stdout)
        assert case in one_line_error(proc)
    assert repo.snapshot() == before


# -- rollback out of a broken HEAD; dry-run with an unusable remote -----------------------


@pytest.mark.parametrize("broken", ["ml/fraud/dvc.lock", "ml/fraud/dvc.yaml"])
def test_rollback_out_of_a_broken_head(moved, tmp_path, broken):
    repo = copy_repo(moved, tmp_path)
    (repo.path / broken).write_bytes(b"\x00\x9c\xffstages: [unclosed\n")
    repo.commit_all("corrupt " + broken)
    before = repo.snapshot()
    plan = repo.dm("rollback", "fraud", "--to", "v1.0.0", "--dry-run")
    assert f"problem         HEAD's {broken}" in plan.stdout
    assert repo.snapshot() == before
    repo.dm("rollback", "fraud", "--to", "v1.0.0", "-m", "out of a broken HEAD")
    for f in ("ml/fraud/dvc.lock", "ml/fraud/dvc.yaml"):
        want = repo.git("show", f"fraud@v1.0.0:{f}").stdout
        assert (repo.path / f).read_text() == want
    assert repo.git("status", "--porcelain").stdout == ""


def test_rollback_dry_run_with_an_unusable_remote(moved, tmp_path):
    """A local remote whose folder is gone (an unmounted share): the plan still prints."""
    import shutil

    repo = copy_repo(moved, tmp_path)
    shutil.rmtree(repo.path / ".dvc" / "cache")
    repo.dvc("remote", "add", "-f", "-d", "gone", str(tmp_path / "unmounted"), "--local")
    before = repo.snapshot()
    proc = repo.dm("rollback", "fraud", "--to", "v1.0.0", "--dry-run")
    assert "v1.0.0" in proc.stdout
    assert "problem         the DVC remote gone" in proc.stdout
    assert "unmounted" in proc.stdout
    assert repo.snapshot() == before
    # the data is in the workspace, so only outputs are missing: the rollback retrains
    # them (as gc relies on) and proves the result instead of failing
    real = repo.dm("rollback", "fraud", "--to", "v1.0.0", check=False)
    assert real.returncode == 0, real.stderr
    assert "Proof (verified)" in real.stdout and "rebuilds them" in real.stderr
    assert "Traceback" not in real.stderr
