"""The wheel ships the templates, and init works from an installed wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.repos import new_repo

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_templates_and_init_works_from_it(tmp_path):
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheel_dir),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next(wheel_dir.glob("dvc_monitor-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("anomaly", "forecast", "risk"):
        for f in ("dvc.yaml", "params.yaml", "monitor.yaml"):
            assert f"dvc_monitor/_templates/{kind}/{f}" in names
    for f in ("Dockerfile", "kubernetes.yaml", "github-deploy.yml", "README.md"):
        assert f"dvc_monitor/_templates/deploy/{f}" in names  # the deployment example
    assert "dvc_monitor/cli/__init__.py" in names
    assert "dvc_monitor/py.typed" in names  # type checkers read the API's types

    # Unpack it as pip would and run init from there: templates come from the wheel.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    repo = new_repo(tmp_path)
    env = dict(repo.env, PYTHONPATH=str(site))
    proc = subprocess.run(
        [sys.executable, "-c",
         "import dvc_monitor.model.scaffold as s, sys; print(s.templates_dir()); "
         "from dvc_monitor.cli import main; sys.exit(main(sys.argv[1:]))",
         "init", "--template", "risk", "--name", "risk", "--remote", str(tmp_path / "remote")],
        cwd=repo.path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith(str(site))
    assert (repo.path / "models/risk/monitor.yaml").read_text().startswith("# What dvc-monitor")
