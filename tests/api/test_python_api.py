"""The Python API: one typed verb per command, returning what the CLI prints (``--json``):
one ``to_json()`` per result type, shared by both. On a small real repository (git, DVC,
GTO-style tags) in a layout dvc-monitor did not write (``tests.support.layouts.build_started``);
plus the shape of the API itself (its names, docstrings, signatures, import cost)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

from dvc_monitor import api
from dvc_monitor.registry.state import Registry
from dvc_monitor.values import to_jsonable
from tests.support.layouts import build_started

VOLATILE = ("seconds",)  # timings differ run to run


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return build_started(tmp_path_factory.mktemp("api"))


def cli_json(repo, *args):
    return json.loads(repo.dm(*args, "--json").stdout)


def same(api_value, printed):
    doc = api_value.to_json() if hasattr(api_value, "to_json") else api_value
    doc = json.loads(json.dumps(to_jsonable(doc)))
    for key in VOLATILE:
        for d in (doc, printed):
            if isinstance(d, dict):
                d.pop(key, None)
    assert doc == printed


def test_versions(repo):
    reg = Registry.load(repo.path)
    rows = [mv.to_json(reg.is_deprecated(mv.name)) for mv in reg.versions("model")]
    printed = cli_json(repo, "versions", "model")
    assert [r["version"] for r in printed] == [r["version"] for r in rows]
    same(rows, printed)
    same(api.versions(repo.path, "model"), printed)


def test_show(repo):
    detail = api.show(repo.path, "model@v1.0.0")
    printed = cli_json(repo, "show", "model@v1.0.0")
    assert "n_est" in json.dumps(printed["params"])
    same(detail, printed)


def test_history(repo):
    events = Registry.load(repo.path).history("model")
    printed = cli_json(repo, "history", "model")
    assert [e["tag"] for e in printed] == ["model@v1.0.0", "model@v1.1.0"]
    same([e.to_json() for e in events], printed)
    same(api.history(repo.path, "model"), printed)


def test_diff(repo):
    d = api.diff(repo.path, "model", "v1.0.0", "v1.1.0")
    printed = cli_json(repo, "diff", "model", "v1.0.0", "v1.1.0")
    assert printed["params_changed"]
    same(d, printed)


def test_rollback_dry_run(repo):
    result = api.rollback(repo.path, "model", to="v1.0.0", dry_run=True)
    printed = cli_json(repo, "rollback", "model", "--to", "v1.0.0", "--dry-run")
    assert printed["dry_run"] is True and printed["version"] == "v1.0.0"
    same(result, printed)


# -- the shape of the API -----------------------------------------------------------------

VERBS = ["adopt", "check", "compare", "deprecate", "deregister", "diff", "gate", "gc", "history",
         "ingest", "init", "promote", "push", "recover", "register", "report", "rollback",
         "score", "serve", "show", "stage", "sync", "tag_info", "trainer", "unassign",
         "versions", "watch"]


def test_the_exported_names_are_pinned():
    assert sorted(api.__all__) == [
        "AdoptResult", "BatchScore", "CheckResult", "CompareResult", "Comparison", "Defaults", "DemoRun",
        "Event", "GateResult", "GcResult", "IngestRecovery", "IngestResult", "InitResult",
        "Listed", "Listing", "LoadedModel", "ModelDiff", "ModelVersion", "Promotion",
        "PublishError",
        "PushResult", "RecoveryResult", "Report", "RollbackResult", "Served", "StageRun",
        "SyncResult", "TagInfo", "TrainerStatus", "Unassigned", "VersionIdentity",
        "WatchResult", "adopt", "check", "compare", "defaults", "demo", "deprecate", "deregister",
        "diff", "gate", "gc", "history", "identity_from_lock", "ingest", "init",
        "installed_trainer", "load_model", "promote", "promote_if_better", "push",
        "record_shadow_verdict", "recover", "recover_ingest",
        "recover_interrupted", "register", "report", "rollback", "score", "score_dask", "serve", "show",
        "stage", "sync", "tag_info", "tag_info_env", "trainer", "unassign", "versions",
        "watch", "watch_dask"]


def test_every_name_resolves_and_has_a_docstring():
    for name in api.__all__:
        value = getattr(api, name)
        assert inspect.getdoc(value), name
        if inspect.isfunction(value):
            assert "Example::" in value.__doc__, name
        else:
            assert inspect.isclass(value), name
            assert hasattr(value, "to_json") or issubclass(value, Exception), name


def test_every_verb_takes_the_repository_first():
    for name in VERBS:
        params = list(inspect.signature(getattr(api, name)).parameters.values())
        assert params[0].name == "repo", name
        assert params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, name
    assert next(iter(inspect.signature(api.demo).parameters)) == "dir"  # the repo it makes


def test_the_verbs_are_the_commands():
    from dvc_monitor.cli import COMMANDS

    commands = {c.replace("-", "_") for c in COMMANDS} - {"completion"}
    assert commands == set(VERBS) | {"demo"}


def test_importing_the_api_imports_nothing_heavy():
    code = ("import sys, dvc_monitor.api\n"
            "print(','.join(m for m in ('pandas', 'sklearn', 'dvc', 'matplotlib', 'numpy')\n"
            "               if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert proc.stdout.strip() == ""


def test_no_module_or_cli_helper_is_exported():
    import types

    for name in ("GitRepo", "partitions_of", "one_line", "compare_table", "tags",
                 "production_server", "to_jsonable", "Registry"):
        assert not hasattr(api, name), name
    assert not any(isinstance(getattr(api, n), types.ModuleType) for n in api.__all__)
