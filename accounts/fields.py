"""``EncryptedSecretField``: a text column holding Fernet ciphertext, read back as a ``Secret``.

A ``Secret`` never prints its value: ``str()``/``repr()`` give the mask, so a secret that ends up
in a log line, a template or an f-string shows ``••••1234`` only. Code that must use the value
(the exchange adapter) calls ``reveal()``.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models.query_utils import DeferredAttribute

from accounts import crypto

MASK = "••••"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def masked(self) -> str:
        if not self._value:
            return ""
        tail = self._value[-4:] if len(self._value) >= 8 else ""
        return MASK + tail

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __str__(self) -> str:
        return self.masked

    __repr__ = __str__


class _SecretAttribute(DeferredAttribute):
    """Wraps whatever is assigned (``account.api_key = "abc"``) in a ``Secret`` at once."""

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.field.attname] = self.field.to_python(value)


class EncryptedSecretField(models.TextField):
    description = "A secret, Fernet-encrypted at rest"
    descriptor_class = _SecretAttribute
    # For django-stubs: assign a str or Secret, always read back a Secret.
    _pyi_private_set_type: str | Secret  # type: ignore[assignment]
    _pyi_private_get_type: Secret  # type: ignore[assignment]

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Secret:
        return Secret(crypto.decrypt(value) if value else "")

    def to_python(self, value: Any) -> Secret:
        if isinstance(value, Secret):
            return value
        return Secret(value or "")

    def get_prep_value(self, value: Any) -> str:
        plaintext = value.reveal() if isinstance(value, Secret) else (value or "")
        return crypto.encrypt(plaintext) if plaintext else ""

    def value_to_string(self, obj: Any) -> str:
        # Serialisation (dumpdata) writes the ciphertext, never the plaintext.
        return self.get_prep_value(self.value_from_object(obj))
