"""Issue #4: rollback against a real S3-compatible remote (moto_server), up and down."""

from __future__ import annotations

import json
import shutil

import pytest

from rollback_support import (  # noqa: F401  (fixtures)
    MODEL,
    MODEL_FILE,
    assert_clean,
    assert_one_line_error,
    registered,
    rollback,
    rollback_base,
    rb_repo,
)
from s3server import s3_server  # noqa: F401

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

    # the remote goes down: a rollback that needs it fails, and changes nothing
    s3_server.stop()
    shutil.rmtree(repo.path / ".dvc" / "cache")
    before = repo.snapshot()
    proc = rollback(repo, "--to", "v1.1.0", check=False)
    line = assert_one_line_error(proc)
    assert "the DVC remote cannot be used" in line and "cannot reach DVC remote 's3'" in line
    assert repo.snapshot() == before
    assert not (repo.path / ".git" / "dvc-monitor").exists()
