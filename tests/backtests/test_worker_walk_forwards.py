"""A walk-forward on REAL Celery worker processes: created through the API, its 4 windows'
optimisations run at once by two workers, each window's out-of-sample run sent by name when its
optimisation finishes, and the last one stitching the result, to ``done``. The test process
talks to the workers only through the database and the broker, as the web process does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from backtests.models import OptimizationTrial, RunStatus, WalkForward, epoch_ms
from tests.backtests.api_helpers import backtest_body
from tests.backtests.conftest import SampleMarket
from tests.backtests.walk_forward_helpers import SPACE, WINDOWS, windows_of
from tests.backtests.worker_helpers import StartWorkers, wait_until, worker_processes

__all__ = ["worker_processes"]  # a fixture, imported for pytest to find

pytestmark = pytest.mark.timeout(300)

FINISHED = {RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED}
RUN_TIMEOUT = 180.0


def test_a_walk_forward_of_4_windows_runs_to_done_on_real_workers(
    worker_processes: StartWorkers, settings: Any, auth_client: Any, sample_candles: SampleMarket
) -> None:
    # given two workers on a queue of their own, which the services send to
    workers = worker_processes(2)
    settings.BACKTESTS_QUEUE = workers[0].queue
    body = {
        **backtest_body(sample_candles, params={"ma": "sma"}),
        "space": SPACE,
        "trials": 3,
        "seed": 11,
        **WINDOWS,
    }
    # when
    response = auth_client.post("/api/walk-forwards", body, format="json")
    assert response.status_code == 201, response.content
    walk_forward_id = response.json()["id"]

    def finished() -> dict[str, Any] | None:
        detail: dict[str, Any] = auth_client.get(f"/api/walk-forwards/{walk_forward_id}").json()
        return detail if detail["status"] in FINISHED else None

    logs = lambda: "\n".join(worker.log()[-3000:] for worker in workers)  # noqa: E731
    detail = wait_until(finished, timeout=RUN_TIMEOUT, what=f"walk-forward {walk_forward_id}")
    # then: done, with the out-of-sample equity and each window's parameters
    assert detail["status"] == "done", (detail["error"], logs())
    assert [window["status"] for window in detail["windows"]] == ["done"] * 4
    for window in detail["windows"]:
        assert set(window["params"]) == {"fast", "slow", "ma"}
        assert window["out_of_sample_metrics"]["final_equity"] > 0
    assert detail["equity"][0] == [epoch_ms(sample_candles.start + timedelta(days=4)), 10000.0]
    assert detail["equity"][-1][1] == pytest.approx(detail["metrics"]["final_equity"])
    assert detail["trials_finished"] == detail["trial_count"] == 12
    # every trial and window ran on the workers, the windows' optimisations at once
    hostnames = {worker.hostname for worker in workers}
    windows = windows_of(walk_forward_id)
    assert {window.worker for window in windows} <= hostnames
    trials = OptimizationTrial.objects.filter(
        optimization__walk_forward_window__walk_forward_id=walk_forward_id
    )
    # (whether two windows' trials also overlapped in time depends on the machine's load: a
    # loaded CI machine once let one worker run every trial of the first windows alone)
    assert set(trials.values_list("worker", flat=True)) == hostnames
    walk_forward = WalkForward.objects.get(pk=walk_forward_id)
    assert walk_forward.started_at is not None
    assert walk_forward.finished_at is not None
