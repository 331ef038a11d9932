from __future__ import annotations

import logging

import pytest

boom_urls = pytest.mark.urls("tests.tradingbot.urls_boom")


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


@boom_urls
def test_a_5xx_answer_is_logged_at_warning_with_its_error_code(api_client, caplog):
    # when
    with caplog.at_level(logging.INFO, logger="tradingbot.access"):
        api_client.get("/api/boom")
    # then
    [record] = [r for r in caplog.records if r.name == "tradingbot.access"]
    assert record.levelno == logging.WARNING
    assert (record.status, record.error) == (500, "internal_error")


@pytest.mark.django_db
def test_an_error_answer_names_its_code_and_stays_at_info_below_500(api_client, caplog):
    with caplog.at_level(logging.INFO, logger="tradingbot.access"):
        api_client.get("/api/auth/me")
    [record] = [r for r in caplog.records if r.name == "tradingbot.access"]
    assert record.levelno == logging.INFO
    assert (record.status, record.error) == (401, "not_authenticated")


def test_a_request_whose_error_handling_failed_still_gets_its_line(rf, caplog):
    # given: a response that could not be made at all (the error page itself failed)
    from tradingbot.middleware import AccessLogMiddleware

    def fails(request):
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    # when
    with (
        caplog.at_level(logging.INFO, logger="tradingbot.access"),
        pytest.raises(UnicodeEncodeError),
    ):
        AccessLogMiddleware(fails)(rf.post("/api/bots"))
    # then
    [record] = [r for r in caplog.records if r.name == "tradingbot.access"]
    assert (record.levelno, record.status, record.path) == (logging.WARNING, 500, "/api/bots")
