"""Live traffic cannot steer an automatic rollback.

A real flap attempt: fraud-detector v1.0.0 (seed 42) held prod,
then v1.1.0 (seed 7, a better f1) took it. The two forests disagree on a few rows of the
template's own sample data: rows only v1.1.0 alerts on ("A" rows) and rows only v1.0.0
alerts on ("B" rows), found by scoring a pool of sample rows with both versions through
``dvc-monitor score``. Windows of normal rows with 6 % of them crafted make only the
version served alert. Fed alternately, they flipped prod back and forth before; now prod
changes at most once and never returns to the version it left:

- within ``min_interval`` (default 1h) of an automatic rollback, an alarm is decided
  ``hold`` and changes nothing;
- the version rolled back from is skipped until a person promotes it again;
- a candidate that recorded a worse primary metric (f1) is skipped unless
  ``allow_worse_metrics: true``.

From the CLI (``watch --rollback``) and over HTTP against a real ``serve --auto-rollback``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.monitoring import ANOMALY, error_line, metric, release, send_until, watch
from tests.support.production import Server, assert_served_cleanly
from tests.support.repos import Repo, copy_repo, new_version, trained_anomaly

pytestmark = pytest.mark.slow

OLD, NEW = "v1.0.0", "v1.1.0"
NORMAL_ROWS, CRAFTED_ROWS = 470, 30  # 6 % of a 500-row window
WINDOW = NORMAL_ROWS + CRAFTED_ROWS
BATCH = 50  # rows per HTTP request


def crafted_windows(repo: Repo, folder: Path) -> dict[str, Path]:
    """Folders ``A`` (only NEW alerts on the crafted rows) and ``B`` (only OLD does) of four
    500-row windows each: seeded sample rows plus 30 crafted ones, shuffled."""
    import pandas as pd

    from dvc_monitor.model.data import write_batch
    from dvc_monitor.kinds import kind_for

    sample = kind_for("anomaly").sample_batch
    pool = pd.concat([sample(i, seed=0, rows=1000) for i in range(100, 110)],
                     ignore_index=True)
    write_batch(pool, folder / "pool.csv")
    alerts = {}
    for version in (OLD, NEW):
        out = repo.json("score", f"{ANOMALY}@{version}", str(folder / "pool.csv"))
        alerts[version] = pd.Series([bool(r["alert"]) for r in out["results"]])
    crafted = {"A": pool[alerts[NEW] & ~alerts[OLD]], "B": pool[alerts[OLD] & ~alerts[NEW]]}
    out = {}
    for name, rows in crafted.items():
        assert len(rows) >= 10, f"too few {name} rows in the pool"  # the premise
        out[name] = folder / name
        out[name].mkdir()
        for i in range(4):
            window = pd.concat([sample(10 + i, seed=0, rows=NORMAL_ROWS),
                                rows.sample(CRAFTED_ROWS, replace=True, random_state=i)],
                               ignore_index=True).sample(frac=1, random_state=i)
            write_batch(window, out[name] / f"w{i}.csv")
    return out


@pytest.fixture(scope="module")
def flap(tmp_path_factory) -> Repo:
    """fraud-detector v1.0.0 held prod, then v1.1.0 (another seed) took it; the template's
    watch: rules; crafted windows in ``repo.path.parent / "A"`` and ``"B"``."""
    repo = trained_anomaly(tmp_path_factory, tmp_path_factory.mktemp("flap"))
    release(repo, ANOMALY, OLD, "prod")
    new_version(repo, repo.path.parent, ANOMALY, "anomaly", param=("seed", "7"))
    release(repo, ANOMALY, NEW, "prod")
    crafted_windows(repo, repo.path.parent)
    return repo


@pytest.fixture
def flap_copy(flap, tmp_path) -> Repo:
    return copy_repo(flap, tmp_path)


def windows(repo: Repo, name: str) -> str:
    return str(repo.path.parent / name)


def set_rules(repo: Repo, **rules: str) -> None:
    """A person edits the workspace's watch: rules and commits them (the stage tags stay)."""
    params = repo.path / f"models/{ANOMALY}/params.yaml"
    lines = [line for line in params.read_text().splitlines()
             if not any(line.strip().startswith(f"{k}:") for k in rules)]
    at = lines.index("watch:") + 1
    lines[at:at] = [f"  {k}: {v}" for k, v in rules.items()]
    params.write_text("\n".join(lines) + "\n")
    repo.commit_all(f"watch rules: {rules}")


def prod_tags(repo: Repo) -> list[str]:
    return repo.git("tag", "-l", f"{ANOMALY}#prod*").stdout.split()


def holder(repo: Repo) -> str:
    [version] = [v["version"] for v in repo.json("versions", ANOMALY) if "prod" in v["stages"]]
    return version


def f1(repo: Repo) -> dict[str, float]:
    return {v["version"]: v["metrics"]["f1"] for v in repo.json("versions", ANOMALY)}


# -- the CLI ------------------------------------------------------------------------------


def test_a_candidate_with_a_worse_primary_metric_is_skipped_unless_allowed(flap_copy):
    repo = flap_copy
    scores = f1(repo)
    assert scores[OLD] < scores[NEW]  # the premise: the newer forest is the better one
    before = repo.snapshot()
    proc, out = watch(repo, f"{ANOMALY}#prod", "--data", windows(repo, "A"), "--rollback")
    assert repo.snapshot() == before
    assert out["decision"] == "retrain" and out["rolled_back"] is None
    [cand] = out["candidates"]
    reason = f"f1 {scores[OLD]:.4g} < holder's {scores[NEW]:.4g}"
    assert cand["version"] == OLD and cand["check"] == "metrics"
    assert cand["skipped"] == reason and cand["windows"] == []  # never scored
    assert f"{OLD} skipped: {reason}" in out["evidence"]
    assert "allow_worse_metrics: true" in proc.stderr  # the note says how to opt out

    text = repo.dm("watch", f"{ANOMALY}#prod", "--data", windows(repo, "A")).stdout
    assert f"candidate {OLD} skipped: {reason}" in text and "Decision: retrain" in text

    set_rules(repo, allow_worse_metrics="true")
    _, out = watch(repo, f"{ANOMALY}#prod", "--data", windows(repo, "A"), "--rollback")
    assert out["decision"] == "rollback" and out["target"] == OLD
    [cand] = out["candidates"]
    assert cand["check"] == "rules" and cand["passed"] is True and cand["skipped"] is None
    assert out["rolled_back"]["verified"] is True
    assert holder(repo) == OLD


def test_flap_attempt_from_the_cli_changes_prod_once(flap_copy):
    repo = flap_copy
    set_rules(repo, allow_worse_metrics="true")  # only the trust checks below stand in the way
    tags = prod_tags(repo)
    decisions = []
    for _ in range(3):  # the crafted windows, alternately, as an attacker would send them
        for name in ("A", "B"):
            proc, out = watch(repo, f"{ANOMALY}#prod", "--data", windows(repo, name),
                              "--rollback")
            assert proc.returncode == 0, proc.stderr
            decisions.append((out["version"], out["decision"], out["target"]))
    # one rollback, then the served version's alarms are held; A rows are quiet on v1.0.0
    assert decisions == [(NEW, "rollback", OLD), (OLD, "hold", None), (OLD, "ok", None),
                         (OLD, "hold", None), (OLD, "ok", None), (OLD, "hold", None)]
    [new_tag] = [t for t in prod_tags(repo) if t not in tags]
    assert holder(repo) == OLD

    # the hold, as --json and the text show it: the tag and time of the rollback
    head = repo.snapshot()
    proc, out = watch(repo, f"{ANOMALY}#prod", "--data", windows(repo, "B"), "--rollback")
    assert out["candidates"] == [] and out["rules"]["min_interval"] == 3600
    assert out["hold"]["tag"] == new_tag and out["hold"]["stage"] == "prod"
    assert re.search(rf"prod was rolled back automatically at \S+Z \({re.escape(new_tag)}\); "
                     r"min_interval 1h: no other automatic rollback before \S+Z",
                     out["hold"]["reason"])
    assert out["hold"]["reason"] in out["evidence"]
    text = repo.dm("watch", f"{ANOMALY}#prod", "--data", windows(repo, "B"),
                   "--rollback").stdout
    assert "Decision: hold" in text and "Hold: prod was rolled back automatically" in text
    assert repo.snapshot() == head

    # without the hold-off, the version rolled back from is still no candidate
    set_rules(repo, min_interval="0")
    for _ in range(2):
        _, out = watch(repo, f"{ANOMALY}#prod", "--data", windows(repo, "B"), "--rollback")
        assert out["decision"] == "retrain" and out["hold"] is None
        [cand] = out["candidates"]
        assert cand["version"] == NEW and cand["check"] == "rolled_back_from"
        assert re.fullmatch(rf"rolled back from at \S+Z \({re.escape(new_tag)}\); a person's "
                            "promote to prod makes it a candidate again", cand["skipped"])
    assert holder(repo) == OLD and [t for t in prod_tags(repo) if t not in tags] == [new_tag]

    # a person promotes v1.1.0 and then v1.0.0 again: v1.1.0 is a candidate once more
    repo.dm("promote", ANOMALY, NEW, "--stage", "prod")
    repo.dm("promote", ANOMALY, OLD, "--stage", "prod")
    _, out = watch(repo, f"{ANOMALY}#prod", "--data", windows(repo, "B"), "--rollback")
    assert out["decision"] == "rollback" and out["target"] == NEW
    assert holder(repo) == NEW


def test_min_interval_and_allow_worse_metrics_are_checked(flap_copy):
    repo = flap_copy
    for rules, expected in (
            ({"min_interval": "soon"}, "watch.min_interval must be a duration such as 1h"),
            ({"min_interval": "-5"}, "watch.min_interval must be a duration such as 1h"),
            ({"allow_worse_metrics": "yes please"},
             "watch.allow_worse_metrics must be true or false")):
        set_rules(repo, **rules)
        before = repo.snapshot()
        proc, _ = watch(repo, f"{ANOMALY}#prod", "--data", windows(repo, "A"), "--rollback",
                        check=False)
        line = error_line(proc)
        assert line.startswith("dvc-monitor: error: ") and expected in line
        assert repo.snapshot() == before
        repo.git("reset", "-q", "--hard", "HEAD~1")
    set_rules(repo, min_interval="90m")
    _, out = watch(repo, f"{ANOMALY}#prod", "--data", windows(repo, "A"))
    assert out["rules"]["min_interval"] == 5400 and out["rules"]["allow_worse_metrics"] is False


# -- over HTTP ------------------------------------------------------------------------------


def traffic(repo: Repo, name: str):
    """Endless requests of the crafted windows ``name`` (each window shuffled, 6 % crafted)."""
    import pandas as pd

    files = sorted((repo.path.parent / name).glob("*.csv"))
    while True:
        for f in files:
            rows = pd.read_csv(f).to_dict("records")
            for start in range(0, len(rows), BATCH):
                yield rows[start:start + BATCH]


def last(health: dict) -> dict:
    return health["watch"]["last_decision"] or {}


def decisions(server: Server, decision: str) -> float:
    """``dvc_monitor_watch_decisions_total{decision}``; 0 before the first one."""
    try:
        return metric(server.metrics(), "dvc_monitor_watch_decisions_total", decision=decision)
    except AssertionError:
        return 0


def serve_phases(repo: Repo, *phases) -> tuple[list, list[dict], str, str]:
    """``serve NAME#prod --auto-rollback``; for each (rows, done) phase, POST ``rows`` until
    ``done(server, health)``. Returns the answers, /health after each phase, the final
    /metrics and the server's stderr (after a clean stop)."""
    server = Server(repo, f"{ANOMALY}#prod", "--auto-rollback", "--window", str(WINDOW),
                    "--poll", "1")
    answers, healths = [], []
    try:
        for rows, done in phases:
            answers += send_until(server, rows, lambda h: done(server, h))
            healths.append(server.get("/health"))
        metrics = server.metrics()
    finally:
        code, stderr = server.stop()
    assert_served_cleanly(code, stderr, answers)
    return answers, healths, metrics, stderr


def test_flap_attempt_over_http_rolls_back_once_then_holds(flap_copy):
    repo = flap_copy
    set_rules(repo, allow_worse_metrics="true")
    tags = prod_tags(repo)
    answers, (rolled, health), metrics, stderr = serve_phases(
        repo, (traffic(repo, "A"), lambda server, h: h["version"] == OLD),
        # the rows only the new holder alerts on: alarm, cooldown, alarm, ...
        (traffic(repo, "B"), lambda server, h: decisions(server, "hold") >= 2))
    warning = stderr.splitlines()[0]  # at start, before "serving ..."
    assert warning.startswith("dvc-monitor: warning: --auto-rollback lets live traffic "
                              "change this repository") and "min_interval" in warning
    versions = [doc["version"] for _, _, doc in answers]
    switch = versions.index(OLD)
    assert set(versions[:switch]) == {NEW} and set(versions[switch:]) == {OLD}  # once

    assert last(rolled)["decision"] == "rollback" and last(rolled)["target"] == OLD
    [new_tag] = [t for t in prod_tags(repo) if t not in tags]
    assert last(rolled)["tag"] == new_tag
    block = repo.git("tag", "-l", "--format=%(contents)", new_tag).stdout
    assert '"trigger": "watch"' in block and f'"from": "{NEW}"' in block

    held = last(health)
    assert held["decision"] == "hold" and held["version"] == OLD and held["action"] == "held"
    assert held["target"] is None and held["tag"] is None
    assert re.fullmatch(rf"prod was rolled back automatically at \S+Z \({re.escape(new_tag)}\); "
                        r"min_interval 1h: no other automatic rollback before \S+Z",
                        held["reason"])
    assert held["message"] == f"hold: {held['reason']}"
    assert holder(repo) == OLD and repo.git("status", "--porcelain").stdout == ""
    assert metric(metrics, "dvc_monitor_watch_decisions_total", decision="rollback") == 1
    assert metric(metrics, "dvc_monitor_watch_decisions_total", decision="hold") >= 2
    assert metric(metrics, "dvc_monitor_watch_actions_total", action="held") >= 2
    assert metric(metrics, "dvc_monitor_model_info", version=OLD) == 1


def test_flap_attempt_over_http_never_returns_to_the_version_it_left(flap_copy):
    """The first rollback ran from the CLI; then ``min_interval: 0`` lifts the hold-off, and
    a server on the new holder gets the rows only it alerts on, alarm after alarm."""
    repo = flap_copy
    set_rules(repo, allow_worse_metrics="true")
    _, out = watch(repo, f"{ANOMALY}#prod", "--data", windows(repo, "A"), "--rollback")
    assert out["decision"] == "rollback" and out["target"] == OLD
    set_rules(repo, min_interval="0")
    before = repo.snapshot()
    answers, [health], metrics, _ = serve_phases(
        repo, (traffic(repo, "B"), lambda server, h: decisions(server, "retrain") >= 2))
    assert {doc["version"] for _, _, doc in answers} == {OLD}
    decision = last(health)
    assert decision["decision"] == "retrain" and decision["action"] == "none"
    [skipped] = decision["skipped"]
    assert skipped.startswith(f"{NEW} skipped: rolled back from at ")
    assert decision["reason"] == skipped and skipped in decision["evidence"]
    assert metric(metrics, "dvc_monitor_watch_decisions_total", decision="retrain") >= 2
    assert 'decision="rollback"' not in "".join(
        line for line in metrics.splitlines() if line.startswith("dvc_monitor_watch_decisions"))
    assert repo.snapshot() == before  # prod stays where the one rollback put it
    assert holder(repo) == OLD
