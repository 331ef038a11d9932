"""``{% staff_overview %}``: the overview panel of the admin index (templates/admin/index.html)."""

from __future__ import annotations

from typing import Any

from django import template

from tradingbot.site.admin_overview import overview_for

register = template.Library()


@register.inclusion_tag("admin/staff_overview.html", takes_context=True)
def staff_overview(context: template.Context) -> dict[str, Any]:
    """The parts of the overview the signed-in staff member may view (the admin index is
    reachable by active staff only)."""
    return {"overview": overview_for(user=context["request"].user), "perms": context["perms"]}
