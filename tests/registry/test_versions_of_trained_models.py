"""Registry end to end on a real trained model: three versions made with dvc-monitor,
compared with GTO; show, history, diff; ids stable across commits and clones; register's
refusals leave the repository as it was.

One repository with three trained versions is built once per test run (shared between
xdist workers through a file lock) and only read; tests that write work on a copy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.repos import Repo, cli_env, new_version, shared_build, trained_anomaly
from tests.support.registry import NAME, assert_agrees_with_gto, gto_json, stderr_line


def _build(base: Path, tmp_path_factory) -> dict:
    repo = trained_anomaly(tmp_path_factory, base)  # NAME, trained
    c1 = repo.head()
    repo.dm("register", NAME, "--bump", "minor")
    c2 = new_version(repo, base, param=("n_estimators", "120"))
    repo.dm("register", NAME, "--bump", "minor")
    c3 = new_version(repo, base, batch=4)
    repo.dm("register", NAME, "--version", "v0.3.0", "-m", "more data")
    repo.dm("promote", NAME, "v0.1.0", "--stage", "prod")
    repo.dm("promote", NAME, "v0.2.0", "--stage", "staging")
    repo.dm("promote", NAME, "v0.3.0", "--stage", "staging")
    repo.dm("promote", NAME, "v0.2.0", "--stage", "prod")
    return {"c1": c1, "c2": c2, "c3": c3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Repo, dict]:
    base = shared_build(tmp_path_factory, "registry-trained",
                        lambda f: (f / "built.json").write_text(
                            json.dumps(_build(f, tmp_path_factory))))
    commits = json.loads((base / "built.json").read_text())
    repo = Repo(base / "repo", cli_env(base / "home"), base / "remote")
    return repo, commits


@pytest.fixture
def copy(trained, tmp_path) -> tuple[Repo, dict]:
    """A private copy of the trained repository (git, DVC cache and all) to write to."""
    repo, commits = trained
    for part in ("repo", "home", "remote"):
        src = repo.path.parent / part
        if src.exists():
            shutil.copytree(src, tmp_path / part, symlinks=True)
    return Repo(tmp_path / "repo", cli_env(tmp_path / "home"), tmp_path / "remote"), commits


# -- read-only --------------------------------------------------------------------------


def test_versions_agree_with_gto(trained):
    repo, commits = trained
    assert_agrees_with_gto(repo)
    registry = gto_json(repo)[NAME]
    assert registry["version"] == "v0.3.0"
    assert registry["stage"] == {"prod": "v0.2.0", "staging": "v0.3.0"}

    rows = repo.json("versions", NAME)
    assert [r["version"] for r in rows] == ["v0.3.0", "v0.2.0", "v0.1.0"]
    assert [r["commit"] for r in rows] == [commits["c3"], commits["c2"], commits["c1"]]
    assert rows == repo.json("versions")  # one model: the same list
    for r in rows:
        assert {"name", "version", "id", "short_id", "commit", "created_at", "author", "stages",
                "metrics", "model_md5", "registered", "message"} <= set(r)
        assert r["name"] == NAME and r["author"] == "Test User"
        assert r["id"].startswith("sha256:") and r["short_id"] == r["id"][7:19]
        assert r["registered"] is True and r["active"] is True
        assert 0 < r["metrics"]["roc_auc"] <= 1
        lock = repo.git("show", f"{r['commit']}:models/{NAME}/dvc.lock").stdout
        assert f"md5: {r['model_md5']}" in lock
    assert len({r["id"] for r in rows}) == 3
    assert rows[0]["message"] == "more data"

    table = repo.dm("versions").stdout
    for r in rows:
        assert r["version"] in table and r["short_id"] in table
    assert "roc_auc=" in table


def test_read_commands_do_not_import_dvc_sklearn_or_pandas(trained):
    repo, _ = trained
    code = (
        "import sys, io, contextlib\n"
        "from dvc_monitor.cli import main\n"
        "for args in (['versions', '--json'], ['show', sys.argv[2] + '#prod', '--json'],\n"
        "             ['history', '--json'], ['diff', sys.argv[2], 'v0.1.0', 'v0.3.0', '--json']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main(['-C', sys.argv[1], *args]) == 0, args\n"
        "heavy = [m for m in ('dvc', 'dvc.repo', 'sklearn', 'pandas', 'gto', 'ruamel.yaml')\n"
        "         if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(repo.path), NAME], env=repo.env,
                          capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "", proc.stdout


def test_show_a_version(trained):
    repo, commits = trained
    prod = repo.json("show", f"{NAME}#prod")
    assert prod["version"] == "v0.2.0" and prod["commit"] == commits["c2"]
    assert prod["stages"] == ["prod"]
    assert prod["params"]["params.yaml"]["train"]["n_estimators"] == 120
    assert prod["lineage"] == ["prepare", "train"]
    assert [(h["event"], h["stage"]) for h in prod["stage_history"]] == [
        ("assign", "staging"), ("assign", "prod")]
    assert prod["updated_at"] > prod["created_at"]
    data = prod["data"][f"models/{NAME}/data"]
    assert len(data["partitions"]) == 3 and data["md5"].endswith(".dir")
    assert f"models/{NAME}/monitor.yaml" in prod["deps"]

    latest = repo.json("show", NAME)
    assert latest["version"] == "v0.3.0"
    assert len(latest["data"][f"models/{NAME}/data"]["partitions"]) == 4
    by_id = repo.json("show", f"{NAME}@{latest['short_id']}")
    assert by_id["version"] == "v0.3.0"
    assert repo.json("show", f"{NAME}@latest")["version"] == "v0.3.0"
    assert repo.json("show", f"{NAME}@v0.1.0")["params"]["params.yaml"]["train"][
        "n_estimators"] == 100
    # the staging assignment of v0.2.0 was superseded by v0.3.0's: it shows no stage now
    assert repo.json("show", f"{NAME}@v0.2.0")["stages"] == ["prod"]

    text = repo.dm("show", f"{NAME}#prod").stdout
    for piece in ("v0.2.0", prod["id"], "stage history", "n_estimators = 120",
                  "data partitions", "(3 partitions)", "roc_auc"):
        assert piece in text, piece


def test_history_in_order(trained):
    repo, commits = trained
    events = repo.json("history")
    assert [(e["event"], e["version"], e["stage"]) for e in events] == [
        ("register", "v0.1.0", None), ("register", "v0.2.0", None), ("register", "v0.3.0", None),
        ("assign", "v0.1.0", "prod"), ("assign", "v0.2.0", "staging"),
        ("assign", "v0.3.0", "staging"), ("assign", "v0.2.0", "prod"),
    ]
    times = [e["time_ns"] for e in events]
    assert times == sorted(times) and len(set(times)) == len(times)
    stamps = [e["timestamp"] for e in events]
    assert len(set(stamps)) == len(stamps)  # whole seconds strictly increasing too
    assert events[0]["tag"] == f"{NAME}@v0.1.0" and events[-1]["tag"] == f"{NAME}#prod#4"
    assert events == repo.json("history", NAME)
    assert "assign" in repo.dm("history").stdout


def test_diff_between_versions(trained):
    repo, _ = trained
    d = repo.json("diff", NAME, "v0.1.0", "v0.2.0")
    assert [(p["key"], p["base"], p["head"]) for p in d["params_changed"]] == [
        ("params.yaml:train.n_estimators", 100, 120)]
    assert d["partitions_added"] == [] and d["partitions_removed"] == []
    assert d["code_changed"] == []
    rows = {m["name"]: m for m in d["metrics"]}
    assert set(rows) >= {"roc_auc", "f1", "alert_rate"}
    for m in rows.values():
        assert m["delta"] == pytest.approx(m["head"] - m["base"])

    d = repo.json("diff", NAME, "v0.2.0", "v0.3.0")
    assert d["params_changed"] == []
    assert len(d["partitions_added"]) == 1
    assert d["partitions_added"][0].startswith(f"models/{NAME}/data/")
    assert d["partitions_removed"] == [] and d["notes"] == []

    md = repo.dm("diff", NAME, "v0.1.0", "#staging", "--md").stdout
    assert "| metric | base | head | Δ |" in md
    assert "`params.yaml:train.n_estimators` | 100 | 120 |" in md
    assert "| data partition | change |" in md and "| added |" in md

    # B defaults to the workspace (HEAD is v0.3.0, clean): nothing changed
    ws = repo.json("diff", NAME, "latest")
    assert ws["same_id"] is True and ws["head"]["commit"] is None
    assert ws["params_changed"] == [] and ws["partitions_added"] == []
    assert all(m["delta"] == 0 for m in ws["metrics"])
    assert "no changes" in repo.dm("diff", NAME, "v0.3.0").stdout

    from dvc_monitor.registry.diff import diff_revisions

    api = diff_revisions(repo.path, NAME, "HEAD~1", "HEAD")
    assert len(api.partitions_added) == 1 and api.params_changed == []
    assert {m.name for m in api.metrics} >= {"roc_auc"}


def test_ids_are_the_same_in_a_fresh_clone(trained, tmp_path):
    from dvc_monitor.registry.state import Registry

    repo, _ = trained
    clone = tmp_path / "clone"
    repo.git("clone", "-q", str(repo.path), str(clone))
    here = {(v["version"], v["id"], v["commit"]) for v in repo.json("versions")}
    proc = subprocess.run([str(Path(sys.executable).parent / "dvc-monitor"), "-C", str(clone),
                           "versions", "--json"], env=repo.env, capture_output=True, text=True,
                          check=True)
    assert {(v["version"], v["id"], v["commit"]) for v in json.loads(proc.stdout)} == here
    # and computed again from each commit's dvc.lock, not read from the tag block
    reg = Registry.load(clone)
    for version, vid, commit in here:
        assert reg.facts_at(NAME, commit).identity.id == vid


# -- writes, on a copy ------------------------------------------------------------------


def test_reverting_a_param_gives_the_same_id(copy):
    repo, commits = copy
    v1 = {v["version"]: v for v in repo.json("versions")}["v0.1.0"]
    repo.git("checkout", "-q", "-b", "revert", commits["c2"])
    repo.dvc("checkout", "-q")
    new_version(repo, repo.path.parent, param=("n_estimators", "100"))
    proc = repo.dm("register", NAME)  # default: patch after the greatest, v0.3.1
    assert "same id" in proc.stderr and "v0.1.0" in proc.stderr
    mv = {v["version"]: v for v in repo.json("versions")}["v0.3.1"]
    assert mv["id"] == v1["id"] and mv["commit"] != v1["commit"]
    assert mv["model_md5"] == v1["model_md5"]  # byte-stable retraining, same inputs


def test_register_refusals_leave_the_repository_unchanged(copy):
    repo, _ = copy
    params = repo.path / "models" / NAME / "params.yaml"
    original = params.read_text()

    def refused(text: str, *args: str) -> None:
        before = repo.snapshot()
        proc = repo.dm("register", NAME, *args, check=False)
        assert proc.returncode != 0, proc.stdout
        assert text in stderr_line(proc)
        assert repo.snapshot() == before

    # HEAD is already v0.3.0
    refused("already has fraud-detector v0.3.0")
    repo.git("commit", "-q", "--allow-empty", "-m", "empty")
    refused("already exists", "--version", "v0.2.0")
    refused("go backwards", "--version", "v0.2.5")
    # a dirty working tree: modified file, then an untracked one
    params.write_text(original.replace("seed: 42", "seed: 43"))
    refused("uncommitted changes")
    params.write_text(original)
    (repo.path / "notes.txt").write_text("x")
    refused("uncommitted changes")
    (repo.path / "notes.txt").unlink()
    # outputs missing from the cache
    lock = (repo.path / "models" / NAME / "dvc.lock").read_text()
    model_md5 = lock.split("path: model.skops")[1].split("md5: ")[1].split()[0]
    cached = repo.path / ".dvc" / "cache" / "files" / "md5" / model_md5[:2] / model_md5[2:]
    saved = cached.read_bytes()
    cached.chmod(0o644)
    cached.unlink()
    refused("not in the DVC cache")
    cached.write_bytes(saved)
    # a pipeline that dvc status does not report up to date
    params.write_text(original.replace("seed: 42", "seed: 43"))
    repo.commit_all("change a param without repro")
    refused("not up to date")
    assert "dvc repro models/fraud-detector/dvc.yaml" in repo.dm(
        "register", NAME, check=False).stderr


def test_partition_lists_missing_from_the_cache_are_reported(copy):
    repo, _ = copy
    v3 = repo.json("show", f"{NAME}@v0.3.0")
    md5 = v3["data"][f"models/{NAME}/data"]["md5"]
    manifest = repo.path / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    manifest.chmod(0o644)
    manifest.unlink()
    d = repo.json("diff", NAME, "v0.2.0", "v0.3.0")
    assert d["partitions_added"] == []
    assert d["data_changed"] and d["data_changed"][0]["head"] == md5
    assert any("partition list not in local cache; run 'dvc fetch'" in n for n in d["notes"])
    assert "run 'dvc fetch'" in repo.dm("diff", NAME, "v0.2.0", "v0.3.0", "--md").stdout
    shown = repo.json("show", f"{NAME}@v0.3.0")
    assert shown["data"][f"models/{NAME}/data"]["partitions"] is None
    assert "run 'dvc fetch'" in repo.dm("show", f"{NAME}@v0.3.0").stdout
