"""The quality gate. Thresholds in params.yaml 'gate:', directions per metric,
exit 1 on a regression beyond a threshold, exit 0 and a table otherwise, clear errors for
thresholds that cannot work. Real git, real DVC, real training."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support.output import last_line_error
from tests.support.repos import Repo, copy_repo, new_version, trained_anomaly

NAME = "fraud-detector"
PARAMS = f"models/{NAME}/params.yaml"


@pytest.fixture(scope="module")
def regressed(tmp_path_factory):
    """HEAD~1: a good anomaly model. HEAD: the same data with n_estimators=1 (worse)."""
    base = tmp_path_factory.mktemp("gate")
    repo = trained_anomaly(tmp_path_factory, base)
    new_version(repo, base, param=("n_estimators", "1"))
    return repo


@pytest.fixture
def repo(regressed, tmp_path):
    """A private copy for tests that write."""
    return copy_repo(regressed, tmp_path)


def set_gate(repo: Repo, gate: dict | None) -> None:
    path = repo.path / PARAMS
    params = yaml.safe_load(path.read_text())
    if gate is None:
        params.pop("gate", None)
    else:
        params["gate"] = gate
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def test_template_gate_fails_on_injected_regression(regressed):
    before = regressed.snapshot()
    proc = regressed.dm("gate", "--base", "HEAD~1", "--head", "HEAD", check=False)
    assert proc.returncode == 5, proc.stdout + proc.stderr
    error = last_line_error(proc)
    assert "quality gate failed for fraud-detector" in error
    assert "roc_auc dropped by" in error and "max_drop 0.03" in error
    # The table is printed before the verdict, with the failing metric marked.
    assert "roc_auc" in proc.stdout and "fail" in proc.stdout
    assert regressed.snapshot() == before


def test_gate_passes_without_regression_and_prints_table(regressed):
    proc = regressed.dm("gate", "--base", "HEAD~1", "--head", "HEAD~1")
    assert "Quality gate passed." in proc.stdout
    for metric in ("roc_auc", "average_precision", "alert_rate"):
        assert metric in proc.stdout


def test_improvement_passes_directional_thresholds(repo):
    """Going from the 1-tree model back to the good one improves every quality metric."""
    set_gate(repo, {"roc_auc": {"max_drop": 0.0}, "average_precision": {"max_drop_pct": 0},
                    "f1": {"max_drop": 0.0}})
    repo.commit_all("strict gate")  # no stage reads 'gate:': same model, same version
    assert "up to date" in repo.dvc("status", f"models/{NAME}/dvc.yaml").stdout
    args = ("gate", "--base", "HEAD", "--head", "HEAD~2", "--thresholds-from", "base")
    proc = repo.dm(*args)
    assert "Quality gate passed." in proc.stdout
    # ...and the template's alert-rate rule sees the alert volume double, either way.
    proc = repo.dm(*args[:-1], "head", check=False)
    assert proc.returncode == 5
    assert "alert_rate changed by" in last_line_error(proc)


def test_gate_default_head_is_workspace_and_json_matches_dvc(regressed):
    """With a clean workspace on main the default base is HEAD~1."""
    proc = regressed.dm("gate", "--json", check=False)
    assert proc.returncode == 5
    result = json.loads(proc.stdout)
    assert result["passed"] is False
    assert result["head"] == "workspace"
    assert result["base"].endswith(regressed.git("rev-parse", "--short=7", "HEAD~1").stdout.strip())
    dvc = json.loads(regressed.dvc("metrics", "diff", "HEAD~1", "--all", "--json").stdout)
    dvc = dvc[f"models/{NAME}/metrics.json"]
    rows = {r["metric"]: r for r in result["rows"]}
    assert set(rows) == set(dvc)
    for metric, d in dvc.items():
        assert rows[metric]["base"] == d["old"]
        assert rows[metric]["head"] == d["new"]
        assert rows[metric]["delta"] == d.get("diff", 0)
    failed = {c["metric"] for c in result["checks"] if c["status"] == "fail"}
    assert "roc_auc" in failed


def test_relaxed_thresholds_pass_and_do_not_change_the_version(repo):
    lock_before = (repo.path / f"models/{NAME}/dvc.lock").read_bytes()
    set_gate(repo, {"roc_auc": {"max_drop": 0.5}, "average_precision": {"max_drop": 0.9},
                    "alert_rate": {"max_change": 0.5}, "f1": {"min": 0.0}})
    proc = repo.dm("gate", "--base", "HEAD~1")
    assert "Quality gate passed." in proc.stdout
    # 'gate:' is no stage's param: the pipeline is still up to date, the lock unchanged.
    assert "up to date" in repo.dvc("status", f"models/{NAME}/dvc.yaml").stdout
    assert (repo.path / f"models/{NAME}/dvc.lock").read_bytes() == lock_before
    # A pull request cannot loosen its own gate: the base's thresholds apply on request.
    proc = repo.dm("gate", "--base", "HEAD~1", "--thresholds-from", "base", check=False)
    assert proc.returncode == 5
    assert "roc_auc dropped" in last_line_error(proc)


def test_relative_threshold(repo):
    set_gate(repo, {"f1": {"max_drop_pct": 5}})
    proc = repo.dm("gate", "--base", "HEAD~1", check=False)
    assert proc.returncode == 5
    assert "f1 dropped by" in last_line_error(proc) and "% " in last_line_error(proc)


def test_no_gate_section_passes_with_a_note(repo):
    set_gate(repo, None)
    proc = repo.dm("gate", "--base", "HEAD~1")
    assert "No quality gate declared." in proc.stdout
    assert "declares no gate" in proc.stderr


@pytest.mark.parametrize("gate, message", [
    ({"roc_acu": {"max_drop": 0.02}}, "gate threshold on unknown metric 'roc_acu'"),
    ({"roc_auc": {"max_increase": 0.02}}, "never catches a regression"),
    ({"roc_auc": {"max_dorp": 0.02}}, "unknown rule 'max_dorp'"),
    ({"roc_auc": {"max_drop": "a lot"}}, "must be a number"),
    ({"roc_auc": {"max_drop": -1}}, "must not be negative"),
    ({"roc_auc": 0.02}, "must be a mapping of rules"),
    (["roc_auc"], "'gate:' must map metric names to rules"),
])
def test_bad_thresholds_are_clear_errors_and_change_nothing(repo, gate, message):
    set_gate(repo, gate)
    before = repo.snapshot()
    proc = repo.dm("gate", "--base", "HEAD~1", check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in last_line_error(proc)
    assert repo.snapshot() == before


def test_base_without_model_and_unknown_revision_are_errors(regressed):
    # A commit whose tree has no model (made without touching the work tree).
    empty_tree = regressed.git("hash-object", "-t", "tree", "/dev/null").stdout.strip()
    empty = regressed.git("commit-tree", empty_tree, "-m", "no model here").stdout.strip()
    before = regressed.snapshot()
    proc = regressed.dm("gate", "--base", empty, check=False)
    assert proc.returncode != 0
    assert "has no model 'fraud-detector'" in last_line_error(proc)
    proc = regressed.dm("gate", "--base", "no-such-rev", check=False)
    assert proc.returncode == 2
    assert "unknown revision 'no-such-rev'" in last_line_error(proc)
    assert regressed.snapshot() == before


def test_stale_workspace_is_refused(repo):
    params = (repo.path / PARAMS).read_text().replace("n_estimators: 1", "n_estimators: 2")
    (repo.path / PARAMS).write_text(params)
    before = repo.snapshot()
    proc = repo.dm("gate", "--base", "HEAD~1", check=False)
    assert proc.returncode == 4
    error = last_line_error(proc)
    assert "out of date" in error and "'train:' params changed" in error and "dvc repro" in error
    assert repo.snapshot() == before


# -- the rules, without a repository ----------------------------------------------------
