"""Fixtures of the scale tests: a real ``dask.distributed`` cluster of two worker
processes (one thread each), started once per session and stopped after it, and the
repositories it scores with (the shared trained states of tests/support)."""

from __future__ import annotations

import pytest

from tests.support.monitoring import ANOMALY, release
from tests.support.production import shared_registry
from tests.support.repos import Repo, trained_anomaly


@pytest.fixture(scope="session")
def dask_client():
    """A ``distributed.Client`` of a ``LocalCluster(n_workers=2, processes=True,
    threads_per_worker=1)``, the default client of the session's Dask work."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(scope="session")
def kinds(tmp_path_factory) -> Repo:
    """tumor-risk (risk) and demand-forecast (forecast) v1.0.0 in prod; read-only."""
    return shared_registry(tmp_path_factory)


@pytest.fixture(scope="session")
def anomaly(tmp_path_factory) -> Repo:
    """fraud-detector v1.0.0 in prod."""
    repo = trained_anomaly(tmp_path_factory, tmp_path_factory.mktemp("scale-anomaly"))
    release(repo, ANOMALY, "v1.0.0", "prod")
    return repo
