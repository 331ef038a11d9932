from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from tradingbot.schema_doc import render_schema


class Command(BaseCommand):
    help = "Write docs/schema.md (every table, column, type, null, key and index) from the models."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", default=str(Path(settings.BASE_DIR) / "docs" / "schema.md"))
        parser.add_argument(
            "--check", action="store_true", help="Exit 1 if the file is stale; write nothing."
        )

    def handle(self, *args: Any, output: str, check: bool, **options: Any) -> None:
        path = Path(output)
        rendered = render_schema()
        if check:
            current = path.read_text() if path.exists() else ""
            if current != rendered:
                self.stderr.write(f"{path} is stale: run python manage.py schema_doc")
                raise SystemExit(1)
            self.stdout.write(f"{path} is current")
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered)
        self.stdout.write(f"wrote {path}")
