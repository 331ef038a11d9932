"""REST endpoints of backtests, parameter sweeps and backtest schedules.

Thin views: input serializers check the shape and bounds of a request, the services check the
rest (strategy, parameters, market, period, grid, cron, quota) and write; the selectors read,
always scoped to the requesting user (another user's object is a 404).

Amounts and rates are decimal strings without trailing zeros (``"10000"``, ``"0.001"``); times
of trades and equity points are epoch milliseconds (UTC), as the engine books them.

- :mod:`backtests.api.common`: the run specification's fields (shared by the three kinds of
  run, the pages' forms and the admin) and the helpers of the views;
- :mod:`backtests.api.backtests`, :mod:`backtests.api.sweeps`, :mod:`backtests.api.schedules`:
  the endpoints of each;
- :mod:`backtests.api.exports`: a finished backtest's trades, metrics and report as a CSV or
  JSON file.
"""
