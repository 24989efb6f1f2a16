"""The ``stage`` fixture: every test of the clusters app runs once per mode (``stage.py``)."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from examples.clusters.tests.stage import Stage, staged


@pytest.fixture(params=["embedded", "remote"])
async def stage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stage]:
    async with staged(request.param, tmp_path) as made:
        yield made
