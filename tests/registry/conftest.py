"""Fixtures of the registry tests."""

from __future__ import annotations

import pytest

from tests.support.repos import Repo, new_repo


@pytest.fixture
def synth(tmp_path) -> Repo:
    """An empty git repository, for model states committed by hand (no training)."""
    return new_repo(tmp_path)
