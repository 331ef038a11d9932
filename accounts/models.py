from __future__ import annotations

import hashlib
from functools import cache
from typing import Any, ClassVar
from zoneinfo import available_timezones

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from accounts.fields import MASK, EncryptedSecretField


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("users need an email address")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **extra)

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email__iexact=username)


def validate_time_zone(name: str) -> None:
    if not is_time_zone(name):
        raise ValidationError(f"{name!r} is not an IANA time zone name.")


def is_time_zone(name: str) -> bool:
    return name in _time_zones()


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


class User(AbstractBaseUser, PermissionsMixin):
    """A trader or a staff member. The email address is the login."""

    email = models.EmailField(unique=True)
    display_name = models.CharField(max_length=100, blank=True)
    time_zone = models.CharField(
        max_length=64, default="UTC", validators=[validate_time_zone],
        help_text="IANA name (Europe/Paris): pages show times in it. Set by the browser at login",
    )  # fmt: skip
    max_leverage = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Staff's cap on the leverage of this user's bots; empty = the market's maximum",
    )  # fmt: skip
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        db_table = "users"
        ordering = ("email",)

    def __str__(self) -> str:
        return self.email


class ApiToken(models.Model):
    """A bearer token for API clients. Only its SHA-256 is stored; it expires."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_tokens"

    def __str__(self) -> str:
        return f"token {self.pk} of {self.user_id}"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    def is_expired(self, now: Any = None) -> bool:
        return self.expires_at <= (now or timezone.now())


def all_notification_kinds() -> list[str]:
    from accounts.notification_kinds import KINDS

    return list(KINDS)


class NotificationChannel(models.Model):
    """Where a user's notifications go: one Apprise URL (``tgram://``, ``mailto://``,
    ``json://``...), encrypted at rest and shown masked. ``kinds`` are the notification kinds
    it gets (every kind by default). After ``NOTIFY_FAILING_AFTER`` failed deliveries in a row
    it is ``failing`` and ``last_error`` says why; a delivery that works makes it ``ok`` again."""

    class Status(models.TextChoices):
        OK = "ok"
        FAILING = "failing"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notification_channels")
    name = models.CharField(max_length=100)
    url = EncryptedSecretField(help_text="The Apprise URL (a secret: encrypted, shown masked)")
    scheme = models.CharField(max_length=32, help_text="The URL's scheme, the one part shown")
    kinds = models.JSONField(default=all_notification_kinds)
    daily_summary_at = models.TimeField(
        null=True, blank=True, help_text="The daily summary's time, in the user's time zone"
    )
    last_summary_on = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OK)
    failure_count = models.PositiveIntegerField(default=0, help_text="Failures in a row")
    last_error = models.TextField(blank=True, default="")
    last_sent_at = models.DateTimeField(null=True, blank=True)
    delivering_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker delivers to it until then (one at a time)"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "notification_channels"
        ordering = ("name", "id")
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=("user", "name"), name="notification_channel_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.url_masked})"

    @property
    def url_masked(self) -> str:
        return f"{self.scheme}://{MASK}"


class NotificationOutbox(models.Model):
    """One notification for one channel, written in the transaction of the event it tells of
    and sent by a Celery task at least once. ``key`` is unique per channel: the same event
    notified twice is one row."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    channel = models.ForeignKey(
        NotificationChannel, on_delete=models.CASCADE, related_name="outbox"
    )
    key = models.CharField(max_length=200, help_text="Idempotency key of the event")
    kind = models.CharField(max_length=40)
    title = models.CharField(max_length=200)
    body = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claim = models.CharField(max_length=32, blank=True, default="", help_text="Delivery lease")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        db_table = "notification_outbox"
        ordering = ("id",)
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=("channel", "key"), name="notification_outbox_key")
        ]
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=("status", "next_attempt_at"), name="notification_outbox_due"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} → channel {self.channel_id} ({self.status})"
