"""report, gate and compare on adopted models: both versions evaluated on the same
reference rows, a gate that decides, versions ranked, and a newly trusted type shown.

Per kind, one repository whose own pipeline trains the model (``adopted_versions``, made
once per test session): adopted and registered as v1.0.0 (the builder's params), retrained
with far fewer trees (risk, anomaly) or a crippling penalty (forecast) as v1.1.0, then
retrained well again as v1.2.0. The numbers
the report shows are checked against the user's own estimator on the reference rows.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.support.adopted import (
    ANOMALY_ARTIFACT,
    ANOMALY_FEATURES,
    ANOMALY_LABEL,
    ANOMALY_MODEL,
    ANOMALY_PARAMS,
    ANOMALY_REFERENCE,
    ANOMALY_UNTRUSTED,
    BETTER,
    BETTER_VERSION,
    FIRST,
    FORECAST_ARTIFACT,
    FORECAST_FEATURES,
    FORECAST_LABEL,
    FORECAST_MODEL,
    FORECAST_PARAMS,
    FORECAST_REFERENCE,
    FORECAST_UNTRUSTED,
    LOF_UNTRUSTED,
    RISK_ARTIFACT,
    RISK_FEATURES,
    RISK_LABEL,
    RISK_MODEL,
    RISK_PARAMS,
    RISK_REFERENCE,
    RISK_UNTRUSTED,
    UNTRUSTED_ARTIFACT,
    WORSE,
    WORSE_VERSION,
    adopted_versions,
    build_anomaly_nested,
    build_forecast,
    build_risk_root,
    build_untrusted,
    estimator_outputs,
    retrain,
    version_commit,
)
from tests.support.output import last_line_error
from tests.support.repos import Repo, copy_repo
from tests.support.rollback import copy_base


@dataclass(frozen=True)
class Case:
    artifact: str
    kind: str
    features: tuple[str, ...]
    label: str
    reference: str  # repository-relative
    model: str  # repository-relative
    params: str  # repository-relative
    worse: dict  # a retrain that is clearly worse
    better: dict  # a good retrain again (other params than v1.0.0's)
    metric: str  # checked against the estimator's own outputs
    plot: str  # the kind's review plot
    trusted: tuple[str, ...]  # what skops does not trust in the model file


CASES = {
    build_risk_root: Case(RISK_ARTIFACT, "risk", RISK_FEATURES, RISK_LABEL, RISK_REFERENCE,
                          RISK_MODEL, RISK_PARAMS, WORSE[build_risk_root],
                          BETTER[build_risk_root], "roc_auc", "calibration", RISK_UNTRUSTED),
    build_anomaly_nested: Case(ANOMALY_ARTIFACT, "anomaly", ANOMALY_FEATURES, ANOMALY_LABEL,
                               ANOMALY_REFERENCE, ANOMALY_MODEL, ANOMALY_PARAMS,
                               WORSE[build_anomaly_nested], BETTER[build_anomaly_nested],
                               "roc_auc", "pr_curve", ANOMALY_UNTRUSTED),
    build_forecast: Case(FORECAST_ARTIFACT, "forecast", FORECAST_FEATURES, FORECAST_LABEL,
                         FORECAST_REFERENCE, FORECAST_MODEL, FORECAST_PARAMS,
                         WORSE[build_forecast], BETTER[build_forecast], "mae", "forecast",
                         FORECAST_UNTRUSTED),
}


@dataclass
class Versions:
    repo: Repo
    case: Case
    first: str  # v1.0.0: the builder's model
    worse: str  # v1.1.0: far fewer trees
    better: str  # v1.2.0: a good model again


def copy_versions(tmp_path_factory, build) -> Versions:
    """This module's copy of ``build``'s three versions (``adopted_versions``, made once
    per test session)."""
    case = CASES[build]
    folder = tmp_path_factory.mktemp(build.__name__) / "copy"
    repo = copy_base(adopted_versions(tmp_path_factory, build), folder)
    return Versions(repo, case, *(version_commit(repo, case.artifact, v)
                                  for v in (FIRST, WORSE_VERSION, BETTER_VERSION)))


@pytest.fixture(scope="module", params=list(CASES), ids=[b.__name__ for b in CASES])
def versions(request, tmp_path_factory) -> Versions:
    return copy_versions(tmp_path_factory, request.param)


def model_at(repo: Repo, case: Case, commit: str, tmp_path: Path) -> Path:
    """A copy of the model file ``commit`` records, from the DVC cache."""
    folder = Path(case.model).parent
    lock = yaml.safe_load(repo.git("show", f"{commit}:{folder / 'dvc.lock'}").stdout)
    md5 = next(o["md5"] for stage in lock["stages"].values() for o in stage.get("outs", [])
               if o["path"] == Path(case.model).name)
    out = tmp_path / f"{commit[:7]}.skops"
    shutil.copyfile(repo.path / ".dvc/cache/files/md5" / md5[:2] / md5[2:], out)
    return out


def own_metric(repo: Repo, case: Case, model: Path) -> float:
    """``case.metric`` of the user's own estimator on the reference rows, computed here."""
    from sklearn.metrics import roc_auc_score

    rows = pd.read_csv(repo.path / case.reference)
    method = {"risk": "predict_proba", "anomaly": "score_samples", "forecast": "predict"}
    out = estimator_outputs(repo, model, case.reference, method[case.kind], case.trusted)
    if case.kind == "risk":
        return roc_auc_score(rows[case.label], out)
    if case.kind == "anomaly":
        return roc_auc_score(rows[case.label], -out)
    predicted = out
    return float(np.mean(np.abs(rows[case.label].to_numpy() - predicted)))


def six(x: float) -> str:
    return f"{x:.6g}"


# -- report ------------------------------------------------------------------------------


def test_report_evaluates_both_versions_on_the_reference_rows(versions, tmp_path):
    repo, case = versions.repo, versions.case
    out = tmp_path / "review" / "report.md"
    before = repo.snapshot()
    proc = repo.dm("report", case.artifact, "--base", versions.first, "--head", versions.worse,
                   "-o", str(out), "--json")
    assert repo.snapshot() == before  # the report never touches the repository
    doc = json.loads(proc.stdout)
    rows = len(pd.read_csv(repo.path / case.reference))
    base = own_metric(repo, case, model_at(repo, case, versions.first, tmp_path))
    head = own_metric(repo, case, model_at(repo, case, versions.worse, tmp_path))
    same = doc["same_data"]
    assert doc["adopted"] is True and doc["kind"] == case.kind
    assert same["source"] == f"reference rows ({case.reference})"
    assert same["rows"] == rows and same["base_metrics"]["n_holdout"] == rows
    assert same["base_metrics"][case.metric] == pytest.approx(base, abs=2e-6)
    assert same["head_metrics"][case.metric] == pytest.approx(head, abs=2e-6)
    assert not math.isclose(base, head, abs_tol=1e-3)  # two different models were read
    assert doc["gate"]["measured_on"] == "reference"
    assert doc["trusted_types"] == {"base": [], "head": [], "added": [], "removed": [],
                                    "changed": False}
    # what changed: the params the retrain set
    changed = [c["key"] for c in doc["changes"]["params_changed"]]
    assert all(any(key.endswith(f"params.yaml:{k}") for key in changed) for k in case.worse)

    markdown = out.read_text()
    assert f"### Both models on the same data ({rows} reference rows ({case.reference}) " \
           "of the head)" in markdown
    assert f"| {case.metric} | {six(same['base_metrics'][case.metric])} | " \
           f"{six(same['head_metrics'][case.metric])} |" in markdown
    assert "Trusted types" not in markdown
    for plot in ("scores", case.plot):
        png = out.with_name(f"report-{plot}.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot
    assert sorted(doc["plots"]) == sorted(f"report-{p}.png" for p in ("scores", case.plot))


def test_report_as_markdown_on_stdout(versions):
    repo, case = versions.repo, versions.case
    proc = repo.dm("report", case.artifact, "--base", versions.worse, "--head",
                   versions.better)
    md = proc.stdout
    assert md.startswith(f"## dvc-monitor review: `{case.artifact}` ({case.kind}, trained by "
                         "its own pipeline)")
    assert "**Quality gate:** ✅ passed" in md and "on the head's reference rows" in md
    assert "reference rows (" + case.reference + ") of the head" in md
    assert f"params.yaml:{next(iter(case.better))} |" in md  # the params diff
    assert "### Plots" not in md  # no -o, no plots


# -- gate --------------------------------------------------------------------------------


def test_gate_fails_a_clearly_worse_retrain(versions):
    repo, case = versions.repo, versions.case
    proc = repo.dm("gate", case.artifact, "--base", versions.first, "--head", versions.worse,
                   check=False)
    assert proc.returncode == 5, proc.stderr
    line = last_line_error(proc)
    assert f"quality gate failed for {case.artifact}" in line
    assert "default gate applies" in proc.stderr
    assert f"evaluated on the head's reference rows ({case.reference})" in proc.stderr


def test_gate_passes_an_improvement(versions):
    repo, case = versions.repo, versions.case
    proc = repo.dm("gate", case.artifact, "--base", versions.worse, "--head", versions.better,
                   "--json")
    result = json.loads(proc.stdout)
    assert result["passed"] is True and result["default_rules"] is True
    assert result["measured_on"] == "reference"
    assert {c["status"] for c in result["checks"]} == {"pass"}
    assert case.metric in {c["metric"] for c in result["checks"]}
    text = repo.dm("gate", case.artifact, "--base", versions.worse, "--head", versions.better)
    assert text.stdout.rstrip().endswith("Quality gate passed.")


def test_gate_reads_a_declared_gate_section(versions, tmp_path):
    """A gate: section in the pipeline's params.yaml replaces the default thresholds."""
    repo, case = versions.repo, versions.case
    copy = copy_repo(repo, tmp_path)
    params = copy.path / case.params
    loose = "max_drop" if case.metric == "roc_auc" else "max_increase"
    params.write_text(params.read_text() + f"gate:\n  {case.metric}: {{{loose}: 1000000}}\n")
    copy.commit_all("A gate nothing fails")
    # the head's params.yaml is the same pipeline's: the weak model now passes
    result = json.loads(copy.dm("gate", case.artifact, "--base", versions.first,
                                "--json").stdout)
    assert result["declared"] is True and result["default_rules"] is False
    assert [c["metric"] for c in result["checks"]] == [case.metric]
    assert result["passed"] is True


# -- compare -----------------------------------------------------------------------------


def test_compare_ranks_the_versions_on_the_latest_reference(versions):
    repo, case = versions.repo, versions.case
    doc = repo.json("compare", case.artifact, "v1.0.0", "v1.1.0", "v1.2.0", "--best",
                    "--metric", case.metric)
    result = doc
    rows = len(pd.read_csv(repo.path / case.reference))
    assert result["rows"] == rows
    assert result["data"] == f"reference rows {case.reference} of v1.2.0"
    ranks = {v["version"]: v["rank"] for v in result["versions"]}
    assert ranks["v1.1.0"] == 3 and result["best"] in ("v1.0.0", "v1.2.0")
    text = repo.dm("compare", case.artifact, "v1.1.0", "v1.2.0", "--best", "--metric",
                   case.metric).stdout
    assert f"Best by {case.metric}" in text and ": v1.2.0 (" in text


# -- trusted types ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def untrusted(adopted) -> tuple[Repo, str, str]:
    """build_untrusted adopted with --trust for each type skops does not trust: (repo,
    the commit before, the adopting commit)."""
    repo = adopted(build_untrusted)
    before = repo.head()
    trust = [arg for t in LOF_UNTRUSTED for arg in ("--trust", t)]
    repo.dm("adopt", UNTRUSTED_ARTIFACT, "--kind", "anomaly", "--features",
            ",".join(ANOMALY_FEATURES), "--label", ANOMALY_LABEL, "--reference",
            ANOMALY_REFERENCE, *trust)
    return repo, before, repo.commit_all("Adopt the LOF detector, trusting its tree types")


def test_report_shows_a_newly_trusted_type(untrusted):
    repo, before, adopting = untrusted
    doc = repo.json("report", UNTRUSTED_ARTIFACT, "--base", before, "--head", adopting)
    assert doc["trusted_types"] == {"base": [], "head": list(LOF_UNTRUSTED),
                                    "added": list(LOF_UNTRUSTED), "removed": [],
                                    "changed": True}
    md = repo.dm("report", UNTRUSTED_ARTIFACT, "--base", before, "--head", adopting).stdout
    section = md.split("### ⚠️ Trusted types changed", 1)[1].split("### Metrics", 1)[0]
    for name in LOF_UNTRUSTED:
        assert f"- added: `{name}`" in section
    # the base predates monitor.yaml: it is judged with the head's, and the gate decides
    assert "has no services/fraud/monitor.yaml (it was adopted later)" in md
    assert doc["same_data"]["base_metrics"] == doc["same_data"]["head_metrics"]
    assert doc["gate"]["passed"] is True


def test_report_without_a_trust_change_has_no_trust_section(untrusted, tmp_path):
    repo, _, adopting = untrusted
    copy = copy_repo(repo, tmp_path)
    head = retrain(copy, ANOMALY_PARAMS, {"train.n_neighbors": 30}, "More neighbours")
    doc = copy.json("report", UNTRUSTED_ARTIFACT, "--base", adopting, "--head", head)
    assert doc["trusted_types"]["changed"] is False
    assert doc["trusted_types"]["head"] == list(LOF_UNTRUSTED)
    md = copy.dm("report", UNTRUSTED_ARTIFACT, "--base", adopting, "--head", head).stdout
    assert "Trusted types" not in md and "### Both models on the same data" in md


# -- bad input ---------------------------------------------------------------------------


def set_monitor(repo: Repo, case: Case, **changes) -> None:
    path = repo.path / Path(case.model).parent / "monitor.yaml"
    doc = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(scope="module")
def risk(tmp_path_factory) -> Versions:
    """Bad input is checked on one kind: this module's own copy of the churn model's
    versions."""
    return copy_versions(tmp_path_factory, build_risk_root)


def test_a_reference_missing_at_the_revision_is_one_line(risk, tmp_path):
    repo = copy_repo(risk.repo, tmp_path)
    set_monitor(repo, risk.case, reference="data/holdout.csv")
    head = repo.commit_all("Point the reference at a file that is not there")
    before = repo.snapshot()
    for command in (["report", risk.case.artifact], ["gate", risk.case.artifact]):
        proc = repo.dm(*command, "--base", risk.first, "--head", head, check=False)
        assert proc.returncode == 4, proc.stderr
        line = last_line_error(proc)
        assert "the reference data/holdout.csv at" in line and "does not exist" in line
        assert "fix reference: in monitor.yaml" in line
    assert repo.snapshot() == before


def test_without_a_reference_gate_and_report_say_what_they_cannot_do(risk, tmp_path):
    repo = copy_repo(risk.repo, tmp_path)
    set_monitor(repo, risk.case, reference=None)
    before = repo.snapshot()
    proc = repo.dm("gate", risk.case.artifact, "--base", risk.first, check=False)
    assert proc.returncode == 6, proc.stderr
    line = last_line_error(proc)
    assert "cannot decide" in line and "no reference" in line
    assert f"dvc-monitor adopt {risk.case.artifact} --reference PATH" in line
    # the report still shows what changed, and says what it skipped and why
    md = repo.dm("report", risk.case.artifact, "--base", risk.first).stdout
    assert "**Quality gate:** cannot decide (no reference rows)" in md
    skipped = md.split("### Skipped", 1)[1]
    assert f"'dvc-monitor adopt {risk.case.artifact} --reference PATH'" in skipped
    assert "params.yaml:train.n_estimators" in md
    assert repo.snapshot() == before


def test_gate_refuses_a_workspace_its_pipeline_has_not_rerun(risk, tmp_path):
    repo = copy_repo(risk.repo, tmp_path)
    params = repo.path / risk.case.params
    trees = risk.case.better["train.n_estimators"]
    assert f"n_estimators: {trees}\n" in params.read_text()
    params.write_text(params.read_text().replace(f"n_estimators: {trees}", "n_estimators: 7"))
    before = repo.snapshot()
    proc = repo.dm("gate", risk.case.artifact, "--base", risk.first, check=False)
    assert proc.returncode == 4, proc.stderr
    line = last_line_error(proc)
    assert "'train' params changed since the last run" in line and "dvc repro" in line
    assert repo.snapshot() == before
