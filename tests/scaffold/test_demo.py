"""The README's main job: ``dvc-monitor demo`` tells the whole story end to end."""

from __future__ import annotations

import json
import subprocess

from tests.support.repos import BIN, cli_env


def test_demo_runs_end_to_end_and_rolls_prod_back(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = cli_env(home)
    proc = subprocess.run([str(BIN / "dvc-monitor"), "demo", "--dir", str(tmp_path / "demo")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "Proof (verified)" in out
    assert "Rolled back fraud-detector to v1.1.0" in out
    served = out.split("while a server follows the prod stage")[1]
    assert served.index("X-Model-Version: v1.2.0") < served.index("X-Model-Version: v1.1.0")
    assert "amount,hour,merchant_category,distance_from_home,txn_last_24h,is_fraud,score,alert" in out

    repo = tmp_path / "demo" / "repo"
    listed = json.loads(subprocess.run([str(BIN / "dvc-monitor"), "versions", "fraud-detector",
                                        "--json"], cwd=repo, env=env, capture_output=True,
                                       text=True, check=True).stdout)
    stages = {v["version"]: sorted(v["stages"]) for v in listed}
    assert stages == {"v1.0.0": [], "v1.1.0": [], "v1.2.0": [], "v1.2.1": ["prod", "staging"]}
    report = tmp_path / "demo" / "report" / "report.md"
    assert "contamination" in report.read_text()
    assert (report.parent / "report-scores.png").stat().st_size > 1000
    timeline = (report.parent / "watch.md").read_text()  # watch --rollback caught v1.2.0
    assert "**Decision: rollback** → **v1.1.0**" in timeline
    # the closed loop: drift detected -> retrain -> shadow -> promoted, all on its own
    loop = out.split("## Drift: a new segment arrives")[1]
    assert "Decision: retrain" in loop
    assert "Retrained: fraud-detector v1.2.1" in loop and "registered in staging" in loop
    assert "gate against v1.1.0: passes" in loop
    shadowed = loop.split("## Shadow v1.2.1 on live traffic")[1]
    assert "X-Model-Version: v1.1.0 (every request)" in shadowed
    assert shadowed.index("X-Model-Version: v1.1.0") < shadowed.index("X-Model-Version: v1.2.1")
    assert "recorded: fraud-detector@v1.2.1@shadow#1" in shadowed
    assert "auto-promote: promoted fraud-detector v1.2.1 to prod" in shadowed
    assert "(the page, while the server runs: http://127.0.0.1:" in shadowed
    events = json.loads(subprocess.run([str(BIN / "dvc-monitor"), "history", "fraud-detector",
                                        "--json"], cwd=repo, env=env, capture_output=True,
                                       text=True, check=True).stdout)
    assert [(e["event"], e["version"], e["stage"]) for e in events[-4:]] == [
        ("register", "v1.2.1", None), ("assign", "v1.2.1", "staging"),
        ("shadow", "v1.2.1", None), ("assign", "v1.2.1", "prod")]
    assert events[-1]["meta"]["if_better"]["automatic"] is True
    retrain_report = tmp_path / "demo" / "report" / "retrain.md"
    assert f"Retrain report: {retrain_report}" in out and retrain_report.is_file()
    assert "The page: run 'dvc-monitor -C" in out and "http://127.0.0.1:8080/" in out
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, env=env,
                            capture_output=True, text=True, check=True).stdout
    assert status == ""
