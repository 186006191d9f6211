"""Fixtures of the scale tests: the shared registries of the production tests (read
only) and the sample batches of each kind."""

from __future__ import annotations

import pytest

from tests.support.adopted import adopted_v1, build_forecast
from tests.support.production import shared_registry
from tests.support.repos import sample_csv
from tests.support.rollback import copy_base


@pytest.fixture(scope="module")
def kinds_repo(tmp_path_factory):
    return shared_registry(tmp_path_factory)


@pytest.fixture(scope="module")
def anomaly_repo(rollback_base, tmp_path_factory):
    return copy_base(rollback_base, tmp_path_factory.mktemp("scale") / "copy")


@pytest.fixture(scope="module")
def adopted_forecast(tmp_path_factory):
    """The folder of an adopted forecaster (a regressor scored row by row), v1.0.0."""
    return adopted_v1(tmp_path_factory, build_forecast)


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    base = tmp_path_factory.mktemp("batches")
    return {kind: sample_csv(base, kind, 3) for kind in ("anomaly", "forecast", "risk")}
