"""docs/schema.md is generated from the models and must not go stale; migrations are complete."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests.conftest import ROOT
from tradingbot.schema_doc import render_schema

SCHEMA_MD = ROOT / "docs" / "schema.md"


def test_it_keeps_docs_schema_md_equal_to_the_models():
    # Fails when a model changed without `python manage.py schema_doc`.
    assert SCHEMA_MD.read_text() == render_schema()


def test_it_lists_the_tables_of_the_accounts_and_markets_apps():
    rendered = render_schema()
    for table, model in [
        ("users", "accounts.User"),
        ("exchange_accounts", "markets.ExchangeAccount"),
        ("api_tokens", "accounts.ApiToken"),
    ]:
        assert f"## `{table}`\n\nModel `{model}`." in rendered


def test_it_documents_columns_keys_and_constraints():
    rendered = render_schema()
    assert "| `email` | CharField(254) (EmailField) | no | unique |  |" in rendered
    assert "| `user_id` | BigIntegerField | no | FK → `users.id` (CASCADE) |  |" in rendered
    assert "| `expires_at` | DateTimeField | no | index |  |" in rendered
    assert "| `api_secret` | TextField (EncryptedSecretField) | no |  | `''` |" in rendered
    assert "UniqueConstraint `exchange_account_label_per_user` (`user_id`, `label`)" in rendered


def test_it_renders_the_same_document_twice():
    assert render_schema() == render_schema()


def test_it_passes_the_schema_doc_check_command(capsys):
    call_command("schema_doc", "--check")
    assert "is current" in capsys.readouterr().out


def test_it_fails_the_schema_doc_check_for_a_stale_file(tmp_path):
    # given
    stale = tmp_path / "schema.md"
    stale.write_text(render_schema().replace("api_tokens", "api_keys"))
    # when / then
    with pytest.raises(SystemExit) as exit_info:
        call_command("schema_doc", "--check", "--output", str(stale))
    assert exit_info.value.code == 1


def test_it_writes_the_rendered_document(tmp_path):
    output = tmp_path / "docs" / "schema.md"
    call_command("schema_doc", "--output", str(output))
    assert output.read_text() == render_schema()


@pytest.mark.django_db
def test_it_has_a_migration_for_every_model_change():
    # Raises SystemExit(1) when makemigrations would create a migration.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
