"""The Python API returns what the CLI prints (``--json``): one ``to_json()`` per
result type, shared by both. On a small real repository (git, DVC, GTO-style tags) in a
layout dvc-monitor did not write (``tests.support.layouts.build_started``)."""

from __future__ import annotations

import json

import pytest

from dvc_monitor import api
from tests.support.layouts import build_started

VOLATILE = ("seconds",)  # timings differ run to run


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return build_started(tmp_path_factory.mktemp("api"))


def cli_json(repo, *args):
    return json.loads(repo.dm(*args, "--json").stdout)


def same(api_value, printed):
    doc = api_value.to_json() if hasattr(api_value, "to_json") else api_value
    doc = json.loads(json.dumps(api.to_jsonable(doc)))
    for key in VOLATILE:
        for d in (doc, printed):
            if isinstance(d, dict):
                d.pop(key, None)
    assert doc == printed


def test_versions(repo):
    reg = api.Registry.load(repo.path)
    rows = [mv.to_json(reg.is_deprecated(mv.name)) for mv in reg.versions("model")]
    printed = cli_json(repo, "versions", "model")
    assert [r["version"] for r in printed] == [r["version"] for r in rows]
    same(rows, printed)


def test_show(repo):
    detail = api.show(api.Registry.load(repo.path), "model@v1.0.0")
    printed = cli_json(repo, "show", "model@v1.0.0")
    assert "n_est" in json.dumps(printed["params"])
    same(detail, printed)


def test_history(repo):
    events = api.Registry.load(repo.path).history("model")
    printed = cli_json(repo, "history", "model")
    assert [e["tag"] for e in printed] == ["model@v1.0.0", "model@v1.1.0"]
    same([e.to_json() for e in events], printed)


def test_diff(repo):
    d = api.diff_refs(repo.path, "model", "v1.0.0", "v1.1.0")
    printed = cli_json(repo, "diff", "model", "v1.0.0", "v1.1.0")
    assert printed["params_changed"]
    same(d, printed)


def test_rollback_dry_run(repo):
    result = api.rollback(repo.path, "model", to="v1.0.0", dry_run=True)
    printed = cli_json(repo, "rollback", "model", "--to", "v1.0.0", "--dry-run")
    assert printed["dry_run"] is True and printed["version"] == "v1.0.0"
    same(result, printed)
