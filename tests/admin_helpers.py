"""What the tests of the admin and of the pages share: running a changelist action, the
messages a page shows, and pages that must show some texts and never a secret."""

from __future__ import annotations

from collections.abc import Iterable
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


def check_pages(client: Any, pages: dict[str, list[str]], *, secrets: Iterable[str]) -> None:
    """Each of ``pages`` (a URL: the texts it must show) answers 200 with its texts and none of
    the ``secrets``."""
    for url, expected in pages.items():
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for text in expected:
            assert text in html, (url, text)
        for secret in secrets:
            assert secret not in html, (url, "a secret is on the page")
