"""The Django side of strategies: catalogue sync, the API, the page, the admin, start-up loading."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from strategies.models import Strategy
from strategies.services import strategy_catalogue_sync
from tests.conftest import ROOT

BUILT_INS = ["bollinger_breakout", "ma_cross", "macd", "rsi_reversion", "signals"]


@pytest.mark.django_db
def test_migrate_syncs_the_built_ins_into_the_catalogue():
    # given: the test database was migrated, which syncs the catalogue
    assert sorted(Strategy.objects.values_list("key", flat=True)) == BUILT_INS
    ma_cross = Strategy.objects.get(key="ma_cross")
    assert [p["name"] for p in ma_cross.params_schema] == ["fast", "slow", "ma", "allow_short"]


@pytest.mark.django_db
def test_sync_keeps_staffs_choice_and_flags_strategies_the_code_dropped():
    # given
    Strategy.objects.filter(key="macd").update(enabled=False, name="stale")
    Strategy.objects.create(key="gone_strategy", name="Gone")
    # when
    result = strategy_catalogue_sync()
    # then
    macd = Strategy.objects.get(key="macd")
    assert (macd.enabled, macd.name) == (False, "MACD") or (
        macd.enabled is False and macd.name != "stale"
    )
    assert Strategy.objects.get(key="gone_strategy").available is False
    assert result == {"registered": 5, "created": 0, "unavailable": 1}


@pytest.mark.django_db
def test_the_api_lists_usable_strategies_with_their_schema(auth_client):
    Strategy.objects.filter(key="macd").update(enabled=False)
    response = auth_client.get("/api/strategies")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [s["key"] for s in results] == [
        "bollinger_breakout",
        "ma_cross",
        "rsi_reversion",
        "signals",
    ]
    ma_cross = next(s for s in results if s["key"] == "ma_cross")
    fast = next(p for p in ma_cross["params"] if p["name"] == "fast")
    assert (fast["type"], fast["default"], fast["min"], fast["max"]) == ("int", 10, 2, 500)
    labels = [p["label"] for p in ma_cross["params"]]
    assert labels == ["Fast average length", "Slow average length", "Moving-average kind",
                      "Allow shorts"]  # fmt: skip
    assert ma_cross["name"]
    assert ma_cross["description"]


@pytest.mark.django_db
def test_the_api_needs_a_login(api_client):
    assert api_client.get("/api/strategies").status_code == 401


@pytest.mark.django_db
def test_the_page_lists_strategies_and_their_parameters(client, user):
    client.force_login(user)
    page = client.get("/strategies/").content.decode()
    for key in BUILT_INS:
        assert f'id="strategy-{key}"' in page
    assert "allow_short" in page


@pytest.mark.django_db
def test_staff_can_disable_a_strategy_in_the_admin(client):
    from tests.factories import UserFactory

    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    macd = Strategy.objects.get(key="macd")
    assert client.get("/admin/strategies/strategy/").status_code == 200
    response = client.post(
        f"/admin/strategies/strategy/{macd.pk}/change/", {"enabled": ""}, follow=True
    )
    assert response.status_code == 200
    macd.refresh_from_db()
    assert macd.enabled is False


@pytest.mark.process
def test_a_broken_strategy_module_stops_start_up_naming_it(tmp_path):
    # given: a user strategy module that fails to import
    (tmp_path / "my_broken_strategy.py").write_text("import does_not_exist\n")
    env = {
        **os.environ,
        "TRADINGBOT_VAR_DIR": str(tmp_path / "var"),
        "STRATEGY_MODULES": "my_broken_strategy",
        "PYTHONPATH": str(tmp_path),
    }
    # when
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    # then
    assert result.returncode != 0
    assert "my_broken_strategy" in result.stderr
    assert "StrategyLoadError" in result.stderr


@pytest.mark.process
def test_a_users_strategy_module_loads_without_touching_our_code(tmp_path):
    (tmp_path / "my_strategy.py").write_text(
        "from strategies.base import Strategy\n"
        "from strategies.registry import register\n"
        "import pandas as pd\n"
        "@register\n"
        "class AlwaysLong(Strategy):\n"
        "    key = 'always_long'\n"
        "    name = 'Always long'\n"
        "    description = 'Holds a long position.'\n"
        "    params = ()\n"
        "    def target_position(self, candles):\n"
        "        return pd.Series(1, index=candles.index, dtype='int8')\n"
    )
    env = {
        **os.environ,
        "TRADINGBOT_VAR_DIR": str(tmp_path / "var"),
        "STRATEGY_MODULES": "my_strategy",
        "PYTHONPATH": str(tmp_path),
    }
    script = "from strategies.registry import active; print(sorted(active().keys()))"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "always_long" in result.stdout
    assert "ma_cross" in result.stdout
