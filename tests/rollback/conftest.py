"""Fixtures of the rollback tests: a private copy of the base repository (three versions of
fraud-detector, one of atm-watch; ``rollback_base`` in tests/conftest.py) per test."""

from __future__ import annotations

import pytest

from tests.support.repos import Repo
from tests.support.rollback import copy_base


@pytest.fixture
def rb_repo(rollback_base, tmp_path) -> Repo:
    """A private copy of the rollback base repository whose DVC remote is the copy's own."""
    return copy_base(rollback_base, tmp_path / "copy")
