"""``dvc-monitor rollback`` restores a registered version, verified, as a new commit."""

from __future__ import annotations

import json
import sys

import pytest

from tests.support.rollback import (
    METRICS,
    MODEL,
    MODEL_DIR,
    MODEL_FILE,
    OTHER,
    assert_clean,
    assert_one_line_error,
    cache_file,
    registered,
    remote_file,
    rollback,
    show_at,
)

pytestmark = pytest.mark.slow


def other_model_files(repo) -> dict:
    snap = repo.snapshot()["files"]
    return {k: v for k, v in snap.items() if k.startswith(f"models/{OTHER}/")}


@pytest.mark.parametrize("version", ["v1.0.0", "v1.1.0"])
def test_rollback_to_a_version(rb_repo, version):
    repo = rb_repo
    target = registered(repo, version)
    head = repo.head()
    other = other_model_files(repo)

    out = json.loads(rollback(repo, "--to", version, "-m", "alerts doubled", "--json").stdout)

    assert out["version"] == version and out["id"] == target.id
    assert out["proof"]["ok"] is True
    assert out["proof"]["got_id"] == target.id
    assert out["proof"]["model"] == {"what": "model", "path": MODEL_FILE,
                                     "expected": target.model_md5, "got": target.model_md5,
                                     "ok": True,
                                     "note": f"model.skops is byte-identical (md5 {target.model_md5})"}
    assert out["proof"]["model_match"] == "byte-identical" and out["proof"]["unsafe"] is None
    assert repo.md5(MODEL_FILE) == target.model_md5
    # cache: false outputs come from the target commit, not from the newer version
    assert (repo.path / METRICS).read_bytes() == show_at(repo, target.commit, METRICS)
    for plot in ("plots/pr_curve.csv", "plots/score_hist.csv"):
        path = f"{MODEL_DIR}/{plot}"
        assert (repo.path / path).read_bytes() == show_at(repo, target.commit, path)
    # a new commit on the branch; history kept
    log = repo.git("log", "-2", "--format=%H %P%n%s").stdout.splitlines()
    assert log[1] == f"Roll back {MODEL} to {version} (id {target.id})"
    assert repo.git("rev-parse", "HEAD^").stdout.strip() == head
    body = repo.git("log", "-1", "--format=%B").stdout
    assert "Rollback-Reason: alerts doubled" in body
    assert "Rollback-By: Test User <test@example.com>" in body
    assert "Rollback-From: v1.2.0" in body
    assert out["commit"] == repo.head()
    assert_clean(repo)
    # the other model in the repository is untouched
    assert other_model_files(repo) == other
    # the data is the target's
    assert out["expected"]["data"] == target.data
    data_dvc = f"{MODEL_DIR}/data.dvc"
    assert (repo.path / data_dvc).read_bytes() == show_at(repo, target.commit, data_dvc)


def test_roll_back_then_forward_and_by_short_id(rb_repo):
    repo = rb_repo
    v1 = registered(repo, "v1.0.0")
    v3 = registered(repo, "v1.2.0")
    rollback(repo, "--to", v1.id.split(":")[1][:12])
    assert repo.md5(MODEL_FILE) == v1.model_md5
    rollback(repo, "--to", "v1.2.0")
    assert repo.md5(MODEL_FILE) == v3.model_md5
    assert (repo.path / METRICS).read_bytes() == show_at(repo, v3.commit, METRICS)
    assert len(repo.git("log", "--format=%s", "--grep=^Roll back").stdout.splitlines()) == 2
    assert_clean(repo)


def test_already_at_the_target_commits_nothing(rb_repo):
    repo = rb_repo
    before = repo.snapshot()
    out = json.loads(rollback(repo, "--to", "v1.2.0", "--json").stdout)
    assert out["commit"] is None and out["proof"]["ok"] is True
    assert repo.snapshot() == before


def test_previous_assigns_the_stage_and_gto_shows_it(rb_repo):
    repo = rb_repo
    v2 = registered(repo, "v1.1.0")
    out = json.loads(rollback(repo, "--previous", "--stage", "prod", "-m", "bad batch",
                              "--json").stdout)
    assert out["version"] == "v1.1.0"
    assert out["tag"] == f"{MODEL}#prod#4"
    new_commit = repo.head()

    shown = json.loads(repo.run("gto", "show", "--json").stdout)
    assert shown[MODEL]["stage"]["prod"] == "v1.1.0"
    assert shown[MODEL]["version"] == "v1.2.0"  # latest is unchanged: nothing was registered
    versions = {v["version"]: v for v in json.loads(repo.dm("versions", MODEL, "--json").stdout)}
    assert versions["v1.1.0"]["stages"] == ["prod"]
    assert versions["v1.2.0"]["stages"] == []
    # GTO finds a version by commit: the stage tag is on v1.1.0's registered commit,
    # the tag's block points at the rollback commit
    assert repo.git("rev-list", "-n1", out["tag"]).stdout.strip() == v2.commit
    message = repo.git("tag", "-l", "--format=%(contents)", out["tag"]).stdout
    block = json.loads(message.split("-----BEGIN DVC-MONITOR-----")[1]
                       .split("-----END DVC-MONITOR-----")[0])
    assert block["rollback"]["commit"] == new_commit
    assert block["rollback"]["from"] == "v1.2.0"
    assert block["rollback"]["why"] == "bad batch"
    assert block["rollback"]["by"] == "Test User <test@example.com>"
    assert repo.md5(MODEL_FILE) == v2.model_md5
    assert_clean(repo)

    # --previous again: the version that held prod before v1.1.0 took it back
    out = json.loads(rollback(repo, "--previous", "--stage", "prod", "--json").stdout)
    assert out["version"] == "v1.2.0"
    assert json.loads(repo.run("gto", "show", "--json").stdout)[MODEL]["stage"]["prod"] == "v1.2.0"


def test_dry_run_prints_the_plan_and_changes_nothing(rb_repo):
    repo = rb_repo
    v1 = registered(repo, "v1.0.0")
    cache_file(repo, v1.model_md5).unlink()
    repo.git("tag", f"{MODEL}@v0.9.0", "HEAD~1")  # lightweight: GTO ignores it, so do we
    before = repo.snapshot()

    proc = rollback(repo, "--to", "v1.0.0", "--stage", "prod", "--dry-run")
    text = proc.stdout
    assert "dvc-monitor: warning:" in proc.stderr and f"{MODEL}@v0.9.0" in proc.stderr
    assert f"{MODEL_DIR}/dvc.lock" in text and f"{MODEL_DIR}/metrics.json" in text
    assert "fetch           1 object(s) from local" in text
    assert f"expected model  {MODEL_FILE} md5 {v1.model_md5}" in text
    assert "retrain         no" in text
    assert "assign prod to v1.0.0 (now: v1.2.0)" in text
    assert "Dry run: nothing was changed." in text

    plan = json.loads(rollback(repo, "--to", "v1.0.0", "--dry-run", "--json").stdout)
    assert plan["dry_run"] is True and plan["commit"] is None
    assert plan["plan"]["fetch"] == [v1.model_md5]
    assert any(f"{MODEL}@v0.9.0" in w for w in plan["plan"]["warnings"])
    assert plan["expected"]["model"] == {MODEL_FILE: v1.model_md5}
    assert plan["expected"]["params"]["params.yaml"]["train"]["n_estimators"] == 100
    assert repo.snapshot() == before


def test_model_absent_from_cache_and_remote_is_retrained_to_the_same_bytes(rb_repo):
    repo = rb_repo
    v1 = registered(repo, "v1.0.0")
    cache_file(repo, v1.model_md5).unlink()
    remote_file(repo, v1.model_md5).unlink()
    plan = json.loads(rollback(repo, "--to", "v1.0.0", "--dry-run", "--json").stdout)
    assert plan["plan"]["retrain"] is True
    assert MODEL_FILE in plan["plan"]["retrain_reason"]

    out = json.loads(rollback(repo, "--to", "v1.0.0", "--json").stdout)
    assert out["retrained"] is True
    assert f"{MODEL_DIR}/dvc.yaml:train" in out["stages_run"]
    assert out["proof"]["ok"] is True
    assert repo.md5(MODEL_FILE) == v1.model_md5
    assert (repo.path / METRICS).read_bytes() == show_at(repo, v1.commit, METRICS)
    assert_clean(repo)


def test_dirty_tree_is_refused_and_kept(rb_repo):
    repo = rb_repo
    params = repo.path / MODEL_DIR / "params.yaml"
    params.write_text(params.read_text() + "# my edit\n")
    before = repo.snapshot()
    proc = rollback(repo, "--to", "v1.0.0", check=False)
    assert proc.returncode == 4
    line = assert_one_line_error(proc)
    assert "uncommitted changes" in line and "params.yaml" in line and "git stash" in line
    assert repo.snapshot() == before


def test_changed_dvc_output_is_refused_and_kept(rb_repo):
    repo = rb_repo
    model = repo.path / MODEL_FILE
    data = model.read_bytes()
    model.unlink()  # DVC may have linked it to the cache: never write through the link
    model.write_bytes(data + b"edited")
    before = repo.snapshot()
    proc = rollback(repo, "--to", "v1.0.0", check=False)
    line = assert_one_line_error(proc)
    assert "differ from HEAD's dvc.lock" in line and MODEL_FILE in line
    assert repo.snapshot() == before


def test_unknown_version_and_usage_errors(rb_repo):
    repo = rb_repo
    before = repo.snapshot()
    line = assert_one_line_error(rollback(repo, "--to", "v9.9.9", check=False))
    assert "no version v9.9.9" in line
    proc = rollback(repo, check=False)
    assert proc.returncode == 2 and "--to VERSION" in assert_one_line_error(proc)
    line = assert_one_line_error(rollback(repo, "--previous", "--stage", "staging", check=False))
    assert "staging" in line and "--to VERSION" in line
    assert repo.snapshot() == before


def test_missing_data_is_reported_before_anything_changes(rb_repo):
    repo = rb_repo
    v1 = registered(repo, "v1.0.0")
    manifest = v1.data[f"{MODEL_DIR}/data"]
    for path in (cache_file(repo, manifest), remote_file(repo, manifest)):
        path.unlink()
    before = repo.snapshot()
    proc = rollback(repo, "--to", "v1.0.0", check=False)
    line = assert_one_line_error(proc)
    assert "needs 1 data object(s) found neither in the local cache" in line
    assert manifest[:10] in line and str(repo.remote) in line and "dvc push" in line
    assert repo.snapshot() == before


def test_recover_without_journal(rb_repo):
    out = rb_repo.dm("recover").stdout
    assert "no interrupted rollback" in out


def test_journal_check_is_a_file_test(rb_repo):
    """Every command checks for a journal; without one nothing heavy is imported."""
    code = (
        "import sys, argparse\n"
        "from dvc_monitor.cli import _recover_interrupted_rollback, _rollback_journal_exists\n"
        f"repo = {str(rb_repo.path / 'models')!r}\n"
        "_recover_interrupted_rollback(argparse.Namespace(command='versions', repo=repo))\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] == 'dvc' or m in "
        "('dvc_monitor.rollback.transaction', 'dvc_monitor.rollback.plan', 'dvc_monitor.registry.state')]\n"
        "assert not heavy, heavy\n"
        "assert not _rollback_journal_exists(repo)\n"
        "j = " + repr(str(rb_repo.path / ".git" / "dvc-monitor")) + "\n"
        "import os; os.makedirs(j, exist_ok=True); open(j + '/rollback.json', 'w').close()\n"
        "from dvc_monitor.rollback.journal import pending_journal\n"
        "assert _rollback_journal_exists(repo) and pending_journal(repo) is not None\n"
    )
    rb_repo.run(sys.executable, "-c", code)
    # an unreadable (torn) journal is removed by the next command, which then works
    out = rb_repo.dm("versions", MODEL)
    assert "removed an unreadable rollback journal" in out.stderr
    assert not (rb_repo.path / ".git" / "dvc-monitor" / "rollback.json").exists()


def test_code_dependency_outside_the_model_folder_is_restored(rb_repo):
    repo = rb_repo
    yaml_path = repo.path / MODEL_DIR / "dvc.yaml"
    text = yaml_path.read_text()
    marker = "    cmd: dvc-monitor stage train\n    deps:\n"
    assert marker in text
    yaml_path.write_text(text.replace(marker, marker + "      - ../../src/features.txt\n"))
    (repo.path / "src").mkdir()
    (repo.path / "src" / "features.txt").write_text("feature set A\n")
    repo.dvc("repro", f"{MODEL_DIR}/dvc.yaml")
    repo.commit_all("train reads src/features.txt")
    repo.dm("register", MODEL, "--version", "v1.3.0")
    (repo.path / "src" / "features.txt").write_text("feature set B\n")
    repo.dvc("repro", f"{MODEL_DIR}/dvc.yaml")
    repo.commit_all("feature set B")
    repo.dm("register", MODEL, "--version", "v1.4.0")

    out = json.loads(rollback(repo, "--to", "v1.3.0", "--json").stdout)
    assert out["plan"]["shared"] == ["src/features.txt"]
    assert any("src/features.txt" in note for note in out["notes"])
    assert (repo.path / "src" / "features.txt").read_text() == "feature set A\n"
    codes = {c["path"]: c for c in out["proof"]["checks"] if c["what"] == "code"}
    assert codes["src/features.txt"]["ok"] is True
    assert_clean(repo)

    # v1.0.0 did not depend on it: the file is left as it is, the pipeline no longer reads it
    rollback(repo, "--to", "v1.0.0")
    assert (repo.path / "src" / "features.txt").read_text() == "feature set A\n"
    assert "features.txt" not in (repo.path / MODEL_DIR / "dvc.yaml").read_text()
    assert_clean(repo)


def test_data_only_left_in_the_workspace_is_used_and_cached_again(rb_repo):
    repo = rb_repo
    rollback(repo, "--to", "v1.1.0")
    v1 = registered(repo, "v1.0.0")
    manifest = v1.data[f"{MODEL_DIR}/data"]
    assert registered(repo, "v1.1.0").data[f"{MODEL_DIR}/data"] == manifest  # same data
    for path in (cache_file(repo, manifest), remote_file(repo, manifest)):
        path.unlink()
    plan = json.loads(rollback(repo, "--to", "v1.0.0", "--dry-run", "--json").stdout)["plan"]
    assert plan["missing"] == [] and plan["fetch"] == []
    out = json.loads(rollback(repo, "--to", "v1.0.0", "--json").stdout)
    assert out["proof"]["ok"] is True and out["retrained"] is False
    assert cache_file(repo, manifest).is_file()
    assert_clean(repo)


def test_rollback_by_is_the_identity_git_uses(rb_repo):
    """GIT_COMMITTER_NAME/EMAIL win over git config, as in git (and in the commit)."""
    env = {"GIT_COMMITTER_NAME": "Ops Bot", "GIT_COMMITTER_EMAIL": "ops@example.com"}
    rollback(rb_repo, "--to", "v1.0.0", "--stage", "prod", env=env)
    assert rb_repo.git("config", "user.name").stdout.strip() == "Test User"
    body = rb_repo.git("log", "-1", "--format=%B").stdout
    assert "Rollback-By: Ops Bot <ops@example.com>" in body
    tag = rb_repo.git("tag", "-l", f"{MODEL}#prod#*", "--sort=-creatordate").stdout.split()[0]
    message = rb_repo.git("tag", "-l", "--format=%(contents)", tag).stdout
    assert '"by": "Ops Bot <ops@example.com>"' in message or \
        '"by":"Ops Bot <ops@example.com>"' in message, message


def test_empty_remote_folder_means_objects_not_pushed(rb_repo):
    import shutil

    v1 = registered(rb_repo, "v1.0.0")
    data_dir = next(iter(v1.data.values()))
    cache_file(rb_repo, data_dir).unlink()  # the manifest must come from the remote now
    shutil.rmtree(rb_repo.remote)
    rb_repo.remote.mkdir()  # the folder is there, and empty
    proc = rollback(rb_repo, "--to", "v1.0.0", "--dry-run", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("dvc-monitor: error: ") and "does not exist" not in line
    assert "not in the local cache" in line or "found neither in" in line
    assert "dvc push" in line
