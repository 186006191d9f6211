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
    stages = {v["version"]: v["stages"] for v in listed}
    assert stages == {"v1.0.0": [], "v1.1.0": ["prod"], "v1.2.0": []}
    report = tmp_path / "demo" / "report" / "report.md"
    assert "contamination" in report.read_text()
    assert (report.parent / "report-scores.png").stat().st_size > 1000
    timeline = (report.parent / "watch.md").read_text()  # watch --rollback caught v1.2.0
    assert "**Decision: rollback** → **v1.1.0**" in timeline
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, env=env,
                            capture_output=True, text=True, check=True).stdout
    assert status == ""
