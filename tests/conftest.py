"""Fixtures shared by the test folders (pytest hands them to every folder below, no import
needed). The helpers they use live in ``tests/support``.

Commands are run as a user would run them: the ``dvc-monitor``, ``dvc``, ``git`` and
``gto`` executables, in a subprocess, with an environment of their own (os.environ is
never modified).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.repos import Repo, new_repo, shared_build, trained_anomaly
from tests.support.rollback import BASE_FORMAT, build_base
from tests.support.s3server import MotoServer

TESTS = Path(__file__).parent

# `make test` runs `pytest -n auto`: xdist hands tests out in collection order. The files
# go in this order, the longest first (measured with --durations on 2 cores), so that no
# long file starts last; files not listed follow. Paths are relative to tests/.
LONGEST_FIRST = (
    "monitoring/test_watch", "production/test_score", "adopt/test_production",
    "loop/test_retrain", "dask/test_dask", "production/test_shadow_verdicts",
    "scale/test_watch_streaming", "scaffold/test_demo", "production/test_replicas",
    "adopt/test_review", "rollback/test_interrupted_rollback",
    "adopt/test_registry_and_rollback", "models/test_unsafe_model_files",
    "rollback/test_rollback_to_a_version", "review/test_report",
    "layouts/test_pipelines_dvc_monitor_did_not_write", "scaffold/test_init_and_train",
    "review/test_review_of_each_kind", "retention/test_gc", "ingest/test_sealed_segments",
    "review/test_compare_versions", "ingest/test_ingest_a_batch", "team/test_push_sync_check",
    "monitoring/test_serve_watch", "adopt/test_adopt_command", "cli/test_errors_help_and_output",
    "rollback/test_trainer_fingerprint", "registry/test_versions_of_trained_models",
    "rollback/test_rollback_from_s3", "production/test_shadow", "page/test_page",
    "loop/test_promote_if_better", "scale/test_score_chunks",
    "registry/test_registry_agrees_with_gto", "production/test_serve",
    "review/test_quality_gate", "adopt/test_builders",
)


def pytest_collection_modifyitems(session, config, items) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def file_rank(item) -> int:
        path = Path(str(item.fspath))
        try:
            key = path.relative_to(TESTS).with_suffix("").as_posix()
        except ValueError:
            return len(rank)
        return rank.get(key, len(rank))

    items.sort(key=file_rank)


@pytest.fixture
def git_repo(tmp_path: Path) -> Repo:
    """An empty git repository."""
    return new_repo(tmp_path)


@pytest.fixture
def anomaly_repo(tmp_path: Path, tmp_path_factory) -> Repo:
    """A repository with a trained, committed anomaly model ``fraud-detector``."""
    return trained_anomaly(tmp_path_factory, tmp_path)


@pytest.fixture(scope="session")
def rollback_base(tmp_path_factory) -> Path:
    """Folder holding ``repo``, ``home`` and ``remote`` of the rollback tests' base
    repository (``tests.support.rollback``: three versions of fraud-detector, one of
    atm-watch), built once per test session."""
    return shared_build(tmp_path_factory, f"rollback-base-{BASE_FORMAT}", build_base)


@pytest.fixture
def s3_server():
    """A real S3-compatible endpoint (``moto_server`` on 127.0.0.1, on a free port)."""
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()
