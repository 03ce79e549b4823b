"""tests/scoring/test_scoring_api.py again, with every process on the Redis Cluster."""

from __future__ import annotations

import pytest

from tests.scoring.test_scoring_api import *  # noqa: F403


@pytest.fixture
def redis_target(cluster_url: str) -> tuple[str, bool]:
    return cluster_url, True
