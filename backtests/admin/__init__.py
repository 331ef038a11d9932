"""The backtests app in the Django admin.

Backtests, their trades, sweeps and optimisations are results written by workers: staff see them
read-only and act on them only through the services (re-run, cancel, delete), never by editing a
row. Schedules are editable: saving one keeps its django-celery-beat ``PeriodicTask`` in step,
deleting one deletes that task too. Every staff action writes an admin ``LogEntry`` on each object
it touched (Django writes those of adding, editing and deleting), the audit trail.

One module per kind of run registers its models: :mod:`backtests.admin.backtests`,
:mod:`backtests.admin.sweeps`, :mod:`backtests.admin.optimizations`,
:mod:`backtests.admin.walk_forwards` and :mod:`backtests.admin.schedules`; what they share is in
:mod:`backtests.admin.common`.
"""

from backtests.admin import backtests, optimizations, schedules, sweeps, walk_forwards

__all__ = ["backtests", "optimizations", "schedules", "sweeps", "walk_forwards"]
