"""What the tests of the admin and of the pages share: running a changelist action, and the
messages a page shows."""

from __future__ import annotations

from typing import Any


def run_admin_action(client: Any, changelist: str, action: str, objects: list[Any]) -> Any:
    """Run ``action`` on ``objects`` from the changelist at URL ``changelist``; the page it
    lands on (followed), which must be a 200."""
    response = client.post(
        changelist,
        {"action": action, "_selected_action": [obj.pk for obj in objects], "index": 0},
        follow=True,
    )
    assert response.status_code == 200
    return response


def shown_messages(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]
