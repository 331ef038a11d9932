"""``/metrics`` served by a REAL daphne process: the WebSocket connections it holds are counted.

The count is kept by daphne itself (a key of its own in Redis, refreshed by a thread of its
own), and read back by the scrape, over HTTP from the loopback address as Prometheus would.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from accounts.services import api_token_issue
from tests.conftest import server_env
from tests.daphne_process import Daphne
from tests.factories import UserFactory
from tests.tradingbot.live_server_helpers import daphne_serving, ws_authed

pytestmark = pytest.mark.process
CONNECTIONS = "tradingbot_websocket_connections"


@pytest.fixture
def server(transactional_db: Any, tmp_path: Path) -> Iterator[Daphne]:
    with daphne_serving(env=server_env(), log_path=tmp_path / "daphne.log") as daphne:
        yield daphne


def scraped(server: Daphne) -> dict[str, float]:
    """Every sample of a scrape of ``/metrics``, by name (labelled ones by name and labels)."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:  # noqa: S310
        assert response.status == 200
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def connections_become(server: Daphne, expected: float, timeout: float = 20.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        seen = (await asyncio.to_thread(scraped, server))[CONNECTIONS]
        if seen == expected or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.1)


def test_a_daphne_scraped_from_the_loopback_counts_its_open_websocket(server: Daphne) -> None:
    token = api_token_issue(user=UserFactory()).key

    async def scenario() -> tuple[float, float, float]:
        # connections a test of this process left open elsewhere may be counted: count from here
        before = (await asyncio.to_thread(scraped, server))[CONNECTIONS]
        ws = await ws_authed(server, token)
        opened = await connections_become(server, before + 1)
        await ws.close()
        closed = await connections_become(server, before)
        return before, opened, closed

    before, opened, closed = asyncio.run(scenario())

    assert opened == before + 1
    assert closed == before
    samples = scraped(server)
    assert samples["tradingbot_metrics_store_up"] == 1
    assert "tradingbot_celery_queue_depth{queue=trading}" in samples
