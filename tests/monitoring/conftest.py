"""Fixtures of the monitoring tests (watch, serve --watch, automatic rollback)."""

from __future__ import annotations

import pytest

from tests.support.monitoring import ANOMALY, release, write_windows
from tests.support.repos import Repo, new_version, trained_anomaly


@pytest.fixture(scope="module")
def flood(tmp_path_factory) -> Repo:
    """fraud-detector: v1.0.0 (contamination 0.02) held prod, then v1.1.0 (0.3) took prod
    and staging (only v1.1.0 ever held staging)."""
    repo = trained_anomaly(tmp_path_factory, tmp_path_factory.mktemp("flood"))
    release(repo, ANOMALY, "v1.0.0", "prod")
    new_version(repo, repo.path.parent, ANOMALY, "anomaly", param=("contamination", "0.3"))
    release(repo, ANOMALY, "v1.1.0", "prod", "staging")
    write_windows(repo.path.parent / "live", "anomaly", range(10, 13), rows=600)
    write_windows(repo.path.parent / "drifted", "anomaly", range(10, 13), rows=600,
                  change=lambda f: f.assign(amount=f["amount"] * 4,
                                            distance_from_home=f["distance_from_home"] * 5))
    return repo
