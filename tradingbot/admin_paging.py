"""Paging the admin lists of the big tables (candles, bot events, books, backtest trades).

Django's changelist counts its rows with ``COUNT(*)`` on every page, which reads the whole table
in PostgreSQL: seconds on tens of millions of candles or events. Unfiltered, this paginator
takes PostgreSQL's own estimate of the table's size instead (``pg_class.reltuples``, kept by
autovacuum) once the table is large; a filtered or searched list is still counted exactly (it
reads what the filter matches). ``show_full_result_count = False`` on the admin spares the
second, unfiltered count.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

ESTIMATE_ABOVE = 100_000  # rows: below this, an exact count is cheap enough


class EstimatedCountPaginator(Paginator):
    @cached_property
    def count(self) -> int:
        estimate = self._table_estimate()
        if estimate is not None and estimate > ESTIMATE_ABOVE:
            return estimate
        return super().count

    def _table_estimate(self) -> int | None:
        """The planner's row estimate of the whole table, when the list is the whole table
        on PostgreSQL; None otherwise (or when the table has never been analysed)."""
        query = getattr(self.object_list, "query", None)
        if query is None or query.where:
            return None
        model = self.object_list.model  # type: ignore[attr-defined]
        connection = connections[self.object_list.db]  # type: ignore[attr-defined]
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                [model._meta.db_table],
            )
            row = cursor.fetchone()
        return int(row[0]) if row and row[0] >= 0 else None
