"""Init for each template, dvc repro, byte-stable retraining, init's refusals."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support.output import one_line_error
from tests.support.repos import init_model, new_repo

EXPECTED_METRICS = {
    "anomaly": {"alert_rate", "score_p50", "score_p90", "score_p99", "precision", "recall",
                "f1", "roc_auc"},
    "forecast": {"mae", "mape", "interval_coverage", "anomaly_rate"},
    "risk": {"roc_auc", "brier", "calibration_error"},
}


@pytest.mark.parametrize("kind", ["anomaly", "forecast", "risk"])
def test_init_then_repro_trains_and_evaluates(tmp_path, kind):
    repo = new_repo(tmp_path)
    name = f"{kind}-model"
    init_model(repo, kind, name)
    model_dir = repo.path / "models" / name

    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert EXPECTED_METRICS[kind] <= set(metrics), metrics
    assert metrics["n_holdout"] > 50
    if kind == "anomaly":
        assert 0 < metrics["alert_rate"] < 0.1
        assert metrics["roc_auc"] > 0.7
        assert metrics["score_p50"] < metrics["score_p90"] < metrics["score_p99"]
    elif kind == "forecast":
        assert 0.75 <= metrics["interval_coverage"] <= 1.0
        assert 0 < metrics["mape"] < 0.2
    else:
        assert metrics["roc_auc"] > 0.9
        assert 0 <= metrics["brier"] < 0.1

    # The artifact is declared where GTO and DVC Studio look for it.
    root_yaml = yaml.safe_load((repo.path / "dvc.yaml").read_text())
    assert root_yaml["artifacts"][name] == {
        "path": f"models/{name}/model.skops", "type": "model",
        "desc": root_yaml["artifacts"][name]["desc"], "labels": ["monitoring", kind],
    }
    # The pipeline is up to date and the committed tree is clean.
    assert "up to date" in repo.dvc("status", f"models/{name}/dvc.yaml").stdout
    assert repo.git("status", "--porcelain").stdout == ""
    # Plots are declared and render from DVC's own command.
    shown = repo.dvc("plots", "show", "--json").stdout
    assert f"models/{name}/plots/" in shown


def test_retraining_gives_identical_model_bytes(anomaly_repo):
    repo = anomaly_repo
    lock = yaml.safe_load((repo.path / "models/fraud-detector/dvc.lock").read_text())
    recorded = lock["stages"]["train"]["outs"][0]["md5"]
    assert repo.md5("models/fraud-detector/model.skops") == recorded

    (repo.path / "models/fraud-detector/model.skops").unlink()
    repo.dvc("repro", "--force", "models/fraud-detector/dvc.yaml:train")
    assert repo.md5("models/fraud-detector/model.skops") == recorded
    # dvc.lock is unchanged: the retrained model is the registered one, byte for byte.
    assert repo.git("status", "--porcelain").stdout == ""


def test_two_models_in_one_repository(tmp_path):
    repo = new_repo(tmp_path)
    init_model(repo, "anomaly", "fraud-detector")
    init_model(repo, "risk", "team/patient-risk")
    root_yaml = yaml.safe_load((repo.path / "dvc.yaml").read_text())
    assert set(root_yaml["artifacts"]) == {"fraud-detector", "team/patient-risk"}
    assert (repo.path / "models/team/patient-risk/metrics.json").is_file()
    assert (repo.path / "models/fraud-detector/metrics.json").is_file()
    assert "up to date" in repo.dvc("status").stdout


def test_init_refuses_to_clobber_and_force_overwrites(tmp_path):
    repo = new_repo(tmp_path)
    init_model(repo, "anomaly", "fraud-detector")
    params = repo.path / "models/fraud-detector/params.yaml"
    params.write_text(params.read_text().replace("n_estimators: 100", "n_estimators: 7"))
    repo.commit_all("tune")
    before = repo.snapshot()

    proc = repo.dm("init", "--template", "anomaly", "--name", "fraud-detector", check=False)
    assert proc.returncode != 0
    assert "refusing to overwrite" in proc.stderr and "--force" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert repo.snapshot() == before

    repo.dm("init", "--template", "anomaly", "--name", "fraud-detector", "--force")
    assert "n_estimators: 100" in params.read_text()


BAD_INIT = [
    (["--template", "nope", "--name", "m"], "unknown template"),
    (["--template", "anomaly", "--name", "bad name"], "invalid"),
    (["--template", "anomaly", "--name", "fraud@v1"], "invalid"),
    (["--template", "anomaly", "--name", "a#b"], "invalid"),
    (["--template", "anomaly", "--name", "x!"], "invalid"),
    (["--template", "anomaly", "--name", "a:b"], "invalid"),
    (["--template", "anomaly", "--name=-rf"], "invalid"),
    (["--template", "anomaly", "--name", "-rf"], "expected one argument"),
    (["--template", "anomaly", "--name", "$(touch pwned)"], "invalid"),
    (["--template", "anomaly", "--name", "trailing-"], "invalid"),
]


@pytest.mark.parametrize("args,message", BAD_INIT)
def test_init_bad_input_is_one_line_and_changes_nothing(git_repo, args, message):
    (git_repo.path / "README").write_text("hello\n")
    git_repo.commit_all("first")
    before = git_repo.snapshot()
    proc = git_repo.dm("init", *args, check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0].lower()
    assert "Traceback" not in proc.stderr
    assert git_repo.snapshot() == before
    assert not (git_repo.path / "pwned").exists()


def test_init_outside_git_repository(tmp_path):
    from tests.support.repos import BIN, cli_env
    import subprocess

    (tmp_path / "home").mkdir()
    plain = tmp_path / "plain"
    plain.mkdir()
    proc = subprocess.run([str(BIN / "dvc-monitor"), "init", "--template", "anomaly", "--name", "m"],
                          cwd=plain, env=cli_env(tmp_path / "home"), capture_output=True, text=True)
    assert proc.returncode != 0
    assert "not inside a git repository" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert list(plain.iterdir()) == []


def test_init_writes_default_remote_outside_the_work_tree(git_repo):
    git_repo.dm("init", "--template", "risk", "--name", "risk")
    assert git_repo.dvc("config", "core.remote").stdout.strip() == "local"
    url = git_repo.dvc("config", "remote.local.url").stdout.strip()
    assert str(git_repo.path) not in url
    assert url.startswith(git_repo.env["DVC_MONITOR_HOME"])


def test_init_with_a_relative_remote_stores_it_as_dvc_remote_add_does(git_repo):
    """``--remote ../storage`` means the folder next to the work tree (relative to where
    the command runs), and DVC reads a relative url from the config file's folder."""
    git_repo.dm("init", "--template", "anomaly", "--name", "fraud-detector", "--sample-data",
                "--remote", "../storage")
    storage = git_repo.path.parent / "storage"
    assert storage.is_dir()
    assert "url = ../../storage" in (git_repo.path / ".dvc/config").read_text()
    assert git_repo.dvc("config", "remote.local.url").stdout.strip() == str(storage)
    git_repo.commit_all("Add the model")
    git_repo.dvc("push", "-q")
    assert any((storage / "files" / "md5").iterdir())
    assert not (git_repo.path / "storage").exists()


def test_init_in_a_folder_with_a_non_ascii_name_works_end_to_end(tmp_path):
    """DVC's config file stores only ASCII: the default remote's folder name is folded
    (``modèles-ü`` -> ``modeles-u-<hash>``), and repro, register and push then work."""
    from tests.support.repos import Repo, cli_env

    (tmp_path / "home").mkdir()
    repo = Repo(tmp_path / "modèles-ü", cli_env(tmp_path / "home"), tmp_path / "unused")
    repo.path.mkdir()
    repo.git("init", "-q", "-b", "main")
    proc = repo.dm("init", "--template", "anomaly", "--name", "fraud-detector", "--sample-data")
    assert "Default DVC remote 'local': " in proc.stdout
    url = repo.dvc("config", "remote.local.url").stdout.strip()
    assert url.startswith(repo.env["DVC_MONITOR_HOME"])
    assert url.isascii() and "/remotes/modeles-u-" in url
    repo.dvc("repro", "models/fraud-detector/dvc.yaml")
    repo.commit_all("Add the model")
    assert "Registered fraud-detector v0.1.0" in repo.dm("register", "fraud-detector",
                                                         "--bump", "minor").stdout
    origin = tmp_path / "origine-é.git"
    repo.run("git", "init", "-q", "--bare", str(origin))
    repo.git("remote", "add", "origin", str(origin))
    proc = repo.dm("push")
    assert "Pushed 1 tag(s) to origin" in proc.stdout
    assert "fraud-detector@v0.1.0" in repo.run("git", "tag", "-l", cwd=origin).stdout
    [checked] = repo.json("check", "fraud-detector")["versions"]
    assert (checked["status"], checked["on_remote"]) == ("remote", checked["objects"])
    assert any((tmp_path / "home/dvc-monitor/remotes").glob("modeles-u-*/files/md5/*"))


@pytest.mark.parametrize("where", ["--remote", "DVC_MONITOR_HOME"])
def test_init_with_a_non_ascii_remote_path_is_one_line_and_changes_nothing(git_repo, where):
    (git_repo.path / "README").write_text("hello\n")
    git_repo.commit_all("first")
    before = git_repo.snapshot()
    args = ["init", "--template", "anomaly", "--name", "m"]
    if where == "--remote":
        args += ["--remote", str(git_repo.path.parent / "dépôt")]
    else:
        git_repo.env = {**git_repo.env, "DVC_MONITOR_HOME": str(git_repo.path.parent / "maison-é")}
    proc = git_repo.dm(*args, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "can only store ASCII" in proc.stderr and "--remote with an ASCII path" in proc.stderr
    assert ("DVC_MONITOR_HOME" in proc.stderr) == (where == "DVC_MONITOR_HOME")
    assert git_repo.snapshot() == before


def test_negative_seed_is_a_usage_error(git_repo):
    proc = git_repo.dm("init", "--template", "anomaly", "--name", "m", "--sample-data",
                       "--seed", "-1", check=False)
    assert proc.returncode == 2
    assert "--seed must be a whole number from 0 to" in one_line_error(proc)
    assert git_repo.git("status", "--porcelain", "--untracked-files=all").stdout == ""
