"""Report, gate and compare for the forecast and risk kinds.

forecast: HEAD adds two weeks of data (the base model must extrapolate on the new holdout).
risk: HEAD sets C=1e-4 (heavy regularisation: a worse Brier score, which the template's
gate catches). Both versions are registered. Real git, real DVC, real training.
"""

from __future__ import annotations

import json

import pytest

from tests.support.repos import new_version, sample_csv, trained

NAMES = {"forecast": "sales", "risk": "patients"}  # as test_watch's: one training each
PLOTS = {"forecast": ["report-scores.png", "report-forecast.png"],
         "risk": ["report-scores.png", "report-calibration.png"]}


@pytest.fixture(scope="module", params=["forecast", "risk"])
def kind_repo(request, tmp_path_factory):
    kind = request.param
    name = NAMES[kind]
    base = tmp_path_factory.mktemp(f"kinds-{kind}")
    repo = trained(tmp_path_factory, base, kind, name)
    repo.dm("register", name, "--version", "v1.0.0")
    if kind == "forecast":
        new_version(repo, base, name=name, kind=kind, batch=4)
    else:
        new_version(repo, base, name=name, kind=kind, param=("C", "0.0001"))
    repo.dm("register", name, "--version", "v1.1.0")
    return kind, name, repo


@pytest.fixture(scope="module")
def report(kind_repo, tmp_path_factory):
    kind, name, repo = kind_repo
    out = tmp_path_factory.mktemp(f"kinds-out-{kind}") / "report.md"
    before = repo.snapshot()
    data = repo.json("report", "--base", "HEAD~1", "--head", "HEAD", "-o", str(out))
    assert repo.snapshot() == before
    return data, out


def test_report_numbers_match_dvc(kind_repo, report):
    kind, name, repo = kind_repo
    data, out = report
    dvc = json.loads(repo.dvc("metrics", "diff", "HEAD~1", "HEAD", "--all", "--json").stdout)
    dvc = dvc[f"models/{name}/metrics.json"]
    rows = {r["metric"]: r for r in data["metrics"]}
    assert set(rows) == set(dvc)
    for metric, d in dvc.items():
        assert (rows[metric]["base"], rows[metric]["head"], rows[metric]["delta"]) == \
            (d["old"], d["new"], d.get("diff", 0)), metric
    assert data["kind"] == kind
    text = out.read_text()
    assert f"## dvc-monitor review: `{name}` ({kind})" in text


def test_report_plots_open(report, kind_repo):
    import matplotlib.image

    kind, _, _ = kind_repo
    data, out = report
    assert data["plots"] == PLOTS[kind]
    for name in data["plots"]:
        image = matplotlib.image.imread(out.parent / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_report_changes_and_same_data(report, kind_repo):
    kind, name, _ = kind_repo
    data, _ = report
    changes = data["changes"]
    same = data["same_data"]
    if kind == "forecast":
        assert changes["partitions_added"] == [f"models/{name}/data/batch-00004.csv"]
        assert changes["params_changed"] == []
        # The base model never saw the newest weeks: it misses more on the same rows.
        assert same["base_metrics"]["mae"] > same["head_metrics"]["mae"]
    else:
        assert [p["key"] for p in changes["params_changed"]] == ["params.yaml:train.C"]
        assert changes["partitions_added"] == []
        assert same["labelled"] is True
        assert same["base_metrics"]["brier"] < same["head_metrics"]["brier"]
    assert 0 <= same["shift"]["top_k_overlap"] <= 1


def test_gate_of_the_template(kind_repo):
    kind, name, repo = kind_repo
    proc = repo.dm("gate", name, "--base", "HEAD~1", "--head", "HEAD", check=False)
    if kind == "forecast":
        assert proc.returncode == 0, proc.stderr
        assert "Quality gate passed." in proc.stdout
    else:
        assert proc.returncode == 5
        assert "brier rose by" in proc.stderr.strip().splitlines()[-1]


def test_compare_picks_the_better_version(kind_repo, tmp_path):
    kind, name, repo = kind_repo
    args = ["compare", name, "v1.0.0", "v1.1.0", "--best"]
    if kind == "forecast":
        # Fresh production data: the week after the training data; history comes from
        # the workspace data for the lag features.
        args += ["--data", str(sample_csv(tmp_path, kind, 5))]
    before = repo.snapshot()
    result = repo.json(*args)
    assert repo.snapshot() == before
    metric = {"forecast": "mae", "risk": "roc_auc"}[kind]
    assert result["metric"] == metric
    values = {v["version"]: v["metrics"][metric] for v in result["versions"]}
    pick = min if kind == "forecast" else max
    assert result["best"] == pick(values, key=values.get)
    if kind == "forecast":
        assert result["rows"] == 336
        assert all(v["metrics"]["n_holdout"] == 336 for v in result["versions"])
