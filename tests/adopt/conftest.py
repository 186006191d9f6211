"""Fixtures of the adopt tests: repositories whose own pipelines train their models
(``tests.support.adopted``), each built once per test session and copied once per module
(a copy's DVC remote is its own, so a test may push)."""

from __future__ import annotations

from typing import Callable

import pytest

from tests.support.adopted import adopted_repo
from tests.support.repos import Repo


@pytest.fixture(scope="module")
def adopted(tmp_path_factory) -> Callable[[Callable], Repo]:
    """``adopted(build_risk_root)``: this module's copy of the repository that builder
    makes (copied on first use)."""
    copies: dict[Callable, Repo] = {}

    def copy(build) -> Repo:
        if build not in copies:
            folder = tmp_path_factory.mktemp(build.__name__) / "copy"
            copies[build] = adopted_repo(tmp_path_factory, build, folder)
        return copies[build]

    return copy
