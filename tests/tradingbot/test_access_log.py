from __future__ import annotations

import logging

import pytest


@pytest.mark.django_db
def test_it_logs_one_line_per_request_with_status_and_user(auth_client, user, caplog):
    # when
    with caplog.at_level(logging.INFO, logger="tradingbot.access"):
        auth_client.get("/api/auth/me")
    # then
    records = [r for r in caplog.records if r.name == "tradingbot.access"]
    assert len(records) == 1
    record = records[0]
    assert record.getMessage() == "http.request"
    assert (record.method, record.path, record.status) == ("GET", "/api/auth/me", 200)
    assert record.user_id == user.pk
    assert record.duration_ms >= 0


@pytest.mark.django_db
def test_health_probes_stay_out_of_the_info_log(client, caplog):
    with caplog.at_level(logging.INFO, logger="tradingbot.access"):
        for _ in range(5):
            client.get("/healthz")
    assert not [r for r in caplog.records if r.name == "tradingbot.access"]
