"""Rollback against a real S3-compatible remote (moto_server), up and down."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.support.repos import Repo
from tests.support.rollback import (
    MODEL,
    MODEL_FILE,
    assert_clean,
    registered,
    rollback,
)

pytestmark = pytest.mark.slow


def test_rollback_pulls_from_s3_and_fails_cleanly_when_it_is_down(rb_repo, s3_server):
    repo = rb_repo
    s3_server.create_bucket("models")
    (repo.path / ".dvc" / "config.local").write_text(
        s3_server.dvc_config_local("s3", "s3://models/dvc-store"))
    repo.dvc("push", "-q", "--all-tags")
    shutil.rmtree(repo.path / ".dvc" / "cache")

    v1 = registered(repo, "v1.0.0")
    plan = json.loads(rollback(repo, "--to", "v1.0.0", "--dry-run", "--json").stdout)
    assert plan["plan"]["remote"] == "s3 (s3://models/dvc-store)"
    assert v1.model_md5 in plan["plan"]["fetch"]
    assert plan["plan"]["retrain"] is False

    out = json.loads(rollback(repo, "--to", "v1.0.0", "--json").stdout)
    assert out["fetched"] == len(plan["plan"]["fetch"])
    assert out["proof"]["ok"] is True and out["retrained"] is False
    assert repo.md5(MODEL_FILE) == v1.model_md5
    # (the other model's objects were removed with the cache: check this model only)
    assert_clean(repo, f"models/{MODEL}/dvc.yaml", f"models/{MODEL}/data.dvc")

    # the remote goes down: the dry run names the problem; the rollback rebuilds outputs
    s3_server.stop()
    shutil.rmtree(repo.path / ".dvc" / "cache")
    # --dry-run still prints the plan, naming the problem
    dry = rollback(repo, "--to", "v1.1.0", "--dry-run")
    assert "problem         the DVC remote s3 (s3://models/dvc-store) cannot be used" in dry.stdout
    assert "cannot reach DVC remote 's3'" in dry.stdout
    assert "refused the connection" in dry.stdout  # one TCP probe, not botocore's retries
    # the data is in the workspace, so only outputs are missing: they are rebuilt by
    # dvc repro and verified against the registered version (nothing is fetched)
    proc = rollback(repo, "--to", "v1.1.0", "--json", check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["retrained"] is True and out["fetched"] == 0 and out["proof"]["ok"] is True
    assert "cannot reach" not in proc.stderr or "rebuilds them" in proc.stderr


def test_missing_credentials_are_not_called_unreachable(rb_repo, tmp_path):
    """A real S3 server (moto, on 127.0.0.1) and a client that has no credentials at all:
    botocore refuses before sending, which is not a network problem."""
    from tests.support.s3server import MotoServer

    server = MotoServer().start()
    try:
        server.create_bucket("models")
        config = server.dvc_config_local("s3", "s3://models/dvc-store")
        (rb_repo.path / ".dvc" / "config.local").write_text(config)
        rb_repo.dvc("push", "-q", "-r", "s3")
        (rb_repo.path / ".dvc" / "config.local").write_text("".join(
            line for line in config.splitlines(True) if "access_key" not in line))
        shutil.rmtree(rb_repo.path / ".dvc" / "cache")
        env = {k: v for k, v in rb_repo.env.items()
               if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"}
        env.update(AWS_EC2_METADATA_DISABLED="true",  # no instance-metadata lookup
                   AWS_CONFIG_FILE=str(tmp_path / "none"),
                   AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
        bare = Repo(rb_repo.path, env, rb_repo.remote)
        plan = rollback(bare, "--to", "v1.0.0", "--dry-run", check=False)
        proc = rollback(bare, "--to", "v1.0.0", check=False)
    finally:
        server.stop()
    # the dry run prints the plan with the problem named (it does not fail)
    assert plan.returncode == 0 and "has no valid credentials" in plan.stdout, plan.stdout
    line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode != 0 and line.startswith("dvc-monitor: error: "), proc.stderr
    assert "has no valid credentials" in line and "AWS_ACCESS_KEY_ID" in line
    assert "cannot reach" not in line
