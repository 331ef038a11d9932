"""The one settings module. Everything that differs between machines comes from the environment.

Unset ``DATABASE_URL`` means SQLite in ``var/``; unset ``REDIS_URL`` means the embedded Redis on a
unix socket in ``var/``. See README.md, "Configuration", for every variable.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from tradingbot.env import (
    celery_broker_url,
    database_from_url,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_networks,
    redis_url_or_embedded,
    secret_from_env_or_file,
)
from tradingbot.logconfig import build_logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
ENV = os.environ
# Local state of the embedded setup: SQLite file, Redis socket, generated dev keys.
VAR_DIR = Path(ENV.get("TRADINGBOT_VAR_DIR") or BASE_DIR / "var").resolve()

# Off unless asked for: `make run` is the production run, `make dev` the debug one.
DEBUG = env_bool(ENV, "DEBUG", default=False)
# Unset keys are generated once into var/ (a fresh `make run` needs nothing configured); a setup
# of several machines sets them, the same on every machine.
SECRET_KEY = secret_from_env_or_file(ENV, "SECRET_KEY", path=VAR_DIR / "secret_key")


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


# Comma-separated Fernet keys; the first encrypts, all decrypt (key rotation).
FIELD_ENCRYPTION_KEY = secret_from_env_or_file(
    ENV,
    "FIELD_ENCRYPTION_KEY",
    path=VAR_DIR / "field_encryption_key",
    generate=_fernet_key,
)
ALLOWED_HOSTS = env_list(ENV, "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list(ENV, "CSRF_TRUSTED_ORIGINS", default=[])

LOG_LEVEL = env_choice(ENV, "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
LOG_FORMAT = env_choice(ENV, "LOG_FORMAT", "text", ("text", "json"))
LOGGING_CONFIG = "logging.config.dictConfig"
LOGGING = build_logging_config(level=LOG_LEVEL, fmt=LOG_FORMAT)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "tradingbot",
    "accounts",
    "strategies",
    "markets",
    "bots",
    "backtests",
    "tradingbot.site",
]

MIDDLEWARE = [
    "tradingbot.middleware.AccessLogMiddleware",
    "tradingbot.security.SecurityHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tradingbot.middleware.TraderTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tradingbot.site.urls"
ASGI_APPLICATION = "tradingbot.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# Under ASGI, Django runs each request's sync code in a thread of its own: a connection kept
# past the request would belong to a thread that is gone and leak (PostgreSQL then refuses
# clients). Keep 0 for daphne; a Celery worker may set a few seconds.
CONN_MAX_AGE = env_int(ENV, "DATABASE_CONN_MAX_AGE", 0, minimum=0)
DATABASES = {
    "default": database_from_url(ENV.get("DATABASE_URL"), sqlite_path=VAR_DIR / "db.sqlite3")
}
DATABASES["default"]["CONN_MAX_AGE"] = CONN_MAX_AGE
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker, channel layer and cache -------------------------------------------
EMBEDDED_REDIS = not ENV.get("REDIS_URL")
REDIS_URL = redis_url_or_embedded(ENV.get("REDIS_URL"), socket_path=VAR_DIR / "redis.sock")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "tb",
    }
}
# Redis pub/sub, not channels-redis' list-based core layer: a group event is one PUBLISH that
# each daphne process fans out to its own sockets (the core layer pushes one copy per socket),
# membership ends with the process's subscription (nothing left behind by a crash), and a
# socket that disconnects cannot take a message meant for the others with it (the core layer
# shares one blocking read per process, and a cancelled read drops what it had popped).
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL}], "prefix": "tb-asgi"},
    }
}

# --- Celery (read by tradingbot/celery.py with namespace="CELERY") ---------------------------
CELERY_BROKER_URL = celery_broker_url(REDIS_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_RESULT_EXPIRES = timedelta(hours=1)
CELERY_TIMEZONE = "UTC"
CELERY_TASK_SOFT_TIME_LIMIT = env_int(ENV, "CELERY_TASK_SOFT_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int(ENV, "CELERY_TASK_TIME_LIMIT", 360, minimum=1)
# A message not acknowledged within this time is delivered again (Redis transport). Longer than
# the hard time limit, so a task still running is never delivered twice; short enough that the
# message of a worker lost before it started is retried within minutes, not the default hour.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 240}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# --- Notifications (accounts.notifications) -------------------------------------------------
NOTIFY_QUEUE = ENV.get("NOTIFY_QUEUE", "default")
# At most one message per channel per this many seconds; what comes meanwhile is batched.
NOTIFY_MIN_INTERVAL_SECONDS = env_int(ENV, "NOTIFY_MIN_INTERVAL_SECONDS", 3, minimum=0)
NOTIFY_FAILING_AFTER = env_int(ENV, "NOTIFY_FAILING_AFTER", 3, minimum=1)
NOTIFY_MAX_ATTEMPTS = env_int(ENV, "NOTIFY_MAX_ATTEMPTS", 8, minimum=1)
NOTIFY_BACKOFF_SECONDS = env_int(ENV, "NOTIFY_BACKOFF_SECONDS", 5, minimum=1)
NOTIFY_MAX_BACKOFF_SECONDS = env_int(ENV, "NOTIFY_MAX_BACKOFF_SECONDS", 3600, minimum=1)
# Staff alerts: a queue this long is a backlog; this many exchange errors in 10 minutes, a spike.
NOTIFY_QUEUE_BACKLOG = env_int(ENV, "NOTIFY_QUEUE_BACKLOG", 1000, minimum=1)
NOTIFY_EXCHANGE_ERRORS = env_int(ENV, "NOTIFY_EXCHANGE_ERRORS", 20, minimum=1)

CELERY_BEAT_SCHEDULE = {
    "send-daily-summaries": {
        "task": "accounts.tasks.send_daily_summaries_task",
        "schedule": timedelta(minutes=1),
        "options": {"queue": "default", "expires": 50},
    },
    "send-system-alerts": {
        "task": "accounts.tasks.send_system_alerts_task",
        "schedule": timedelta(minutes=1),
        "options": {"queue": "default", "expires": 50},
    },
    "deliver-due-notifications": {
        "task": "accounts.tasks.deliver_due_notifications_task",
        "schedule": timedelta(minutes=1),
        "options": {"queue": ENV.get("NOTIFY_QUEUE", "default"), "expires": 50},
    },
    "dispatch-bot-ticks": {
        "task": "bots.tasks.dispatch_ticks_task",
        "schedule": timedelta(seconds=env_int(ENV, "BOT_DISPATCH_SECONDS", 1, minimum=1)),
        "options": {"queue": ENV.get("BOTS_QUEUE", "trading"), "expires": 10},
    },
    "cleanup-expired-auth": {
        "task": "accounts.tasks.cleanup_expired_auth_task",
        "schedule": timedelta(hours=1),
        "options": {"queue": "default", "expires": 50 * 60},
    },
    "prune-bot-events": {
        "task": "bots.tasks.prune_bot_events_task",
        "schedule": timedelta(days=1),
        "options": {"queue": "default", "expires": 60 * 60},
    },
    "record-account-equity": {
        "task": "bots.tasks.record_account_equity_task",
        "schedule": timedelta(minutes=1),
        "options": {"queue": "default", "expires": 50},
    },
    "compact-equity": {
        "task": "bots.tasks.compact_equity_task",
        "schedule": timedelta(hours=1),
        "options": {"queue": "default", "expires": 50 * 60},
    },
    "fail-stale-backtests": {
        "task": "backtests.tasks.fail_stale_runs_task",
        "schedule": timedelta(minutes=1),
        "options": {"queue": "default", "expires": 50},
    },
    "requeue-lost-backtests": {
        "task": "backtests.tasks.requeue_lost_runs_task",
        "schedule": timedelta(minutes=1),
        "options": {"queue": "default", "expires": 50},
    },
}

# --- Backtests -------------------------------------------------------------------------------
# The queue backtest and sweep tasks go to (tests point it at their own worker's queue).
BACKTESTS_QUEUE = ENV.get("BACKTESTS_QUEUE", "backtests")
# A backtest or sweep takes at most this many candles.
BACKTEST_MAX_CANDLES = env_int(ENV, "BACKTEST_MAX_CANDLES", 2_000_000, minimum=1)
# Queued plus running backtests and sweeps per user; more are refused with 429.
BACKTEST_MAX_ACTIVE_PER_USER = env_int(ENV, "BACKTEST_MAX_ACTIVE_PER_USER", 10, minimum=1)
# A running backtest whose worker has not reported for this long is failed (its worker is gone).
BACKTEST_STALE_SECONDS = env_int(ENV, "BACKTEST_STALE_SECONDS", 120, minimum=10)
# A backtest or sweep combination still queued this long after its message was sent gets it sent
# again (the broker may have lost it); a duplicate message is skipped by the worker.
BACKTEST_REQUEUE_SECONDS = env_int(ENV, "BACKTEST_REQUEUE_SECONDS", 600, minimum=10)
# How many times a backtest is started before a worker lost mid-run fails it for good.
BACKTEST_MAX_ATTEMPTS = env_int(ENV, "BACKTEST_MAX_ATTEMPTS", 2, minimum=1)
# The stored equity curve is thinned to about this many points (it is for charts).
BACKTEST_EQUITY_POINTS = env_int(ENV, "BACKTEST_EQUITY_POINTS", 2000, minimum=2)
SWEEP_MAX_COMBINATIONS = env_int(ENV, "SWEEP_MAX_COMBINATIONS", 1000, minimum=1)
# The most combinations of a sweep one task runs (backtests.services.sweeps.batch_size): a task
# costs a few ms of queue and database besides its combinations.
SWEEP_BATCH_SIZE = env_int(ENV, "SWEEP_BATCH_SIZE", 8, minimum=1)
# Optimisations (Optuna studies): at most this many trials each.
OPTIMIZATION_MAX_TRIALS = env_int(ENV, "OPTIMIZATION_MAX_TRIALS", 1000, minimum=1)
# Tasks sent per optimisation; each runs trials until none is left, so this many workers (at most)
# run its trials at once. A task beyond the free workers waits, then finds nothing left to run.
OPTIMIZATION_PARALLEL_TASKS = env_int(ENV, "OPTIMIZATION_PARALLEL_TASKS", 8, minimum=1)
# Optuna's storage (backtests/services/studies.py): empty means the project's database server.
OPTUNA_STORAGE_URL = ENV.get("OPTUNA_STORAGE_URL", "")
# A running trial stamps its row this often; one silent for the grace period is failed.
OPTUNA_HEARTBEAT_SECONDS = env_int(ENV, "OPTUNA_HEARTBEAT_SECONDS", 10, minimum=1)
OPTUNA_GRACE_SECONDS = env_int(ENV, "OPTUNA_GRACE_SECONDS", 60, minimum=2)

# --- Trading bots ----------------------------------------------------------------------------
# The queue bot ticks go to (tests point it at their own worker's queue).
BOTS_QUEUE = ENV.get("BOTS_QUEUE", "trading")
# Beat runs the dispatcher this often; it enqueues a tick for every bot whose candle has closed.
BOT_DISPATCH_SECONDS = env_int(ENV, "BOT_DISPATCH_SECONDS", 1, minimum=1)
# Bot ids per tick task: a Celery message costs about as much as a paper tick.
BOT_TICK_BATCH = env_int(ENV, "BOT_TICK_BATCH", 20, minimum=1)
# A tick holds its bot this long at most; a tick killed mid-way frees the bot when it lapses.
BOT_TICK_LEASE_SECONDS = env_int(ENV, "BOT_TICK_LEASE_SECONDS", 60, minimum=1)
# A dispatched tick that has not run this long after dispatch is dispatched again (lost message).
BOT_REDISPATCH_SECONDS = env_int(ENV, "BOT_REDISPATCH_SECONDS", 30, minimum=1)
# Closed candles a tick hands the strategy (its warm-up must fit in them).
BOT_CANDLE_WINDOW = env_int(ENV, "BOT_CANDLE_WINDOW", 500, minimum=10)
# Live bots tick this long after a candle closes, so the exchange has published it.
BOT_LIVE_CLOSE_DELAY_SECONDS = env_int(ENV, "BOT_LIVE_CLOSE_DELAY_SECONDS", 2, minimum=0)
# Retry a transient exchange failure after 2, 4, 8 ... seconds, at most this long.
BOT_MAX_BACKOFF_SECONDS = env_int(ENV, "BOT_MAX_BACKOFF_SECONDS", 300, minimum=1)
# Bot events (the bots' own logs) older than this are pruned daily; orders and trades never are.
BOT_EVENT_RETENTION_DAYS = env_int(ENV, "BOT_EVENT_RETENTION_DAYS", 30, minimum=1)
# Live-money safety (issue 15): a live bot whose ticks failed this many times in a row shows as
# degraded; a stop waits this long per exchange request (and tries each once); checking a live
# account's keys (on save, and before a bot starts on an unverified one) waits this long.
BOT_DEGRADED_AFTER_FAILURES = env_int(ENV, "BOT_DEGRADED_AFTER_FAILURES", 3, minimum=1)
BOT_STOP_EXCHANGE_TIMEOUT_SECONDS = env_int(ENV, "BOT_STOP_EXCHANGE_TIMEOUT_SECONDS", 5, minimum=1)
EXCHANGE_KEY_CHECK_TIMEOUT_SECONDS = env_int(
    ENV, "EXCHANGE_KEY_CHECK_TIMEOUT_SECONDS", 10, minimum=1
)
# Replay catch-up (issue 15): a replay bot that fell behind its schedule (worker down, ticks
# lagging) acts on every candle it missed, in order, at most this many per tick (and none begun
# after a quarter of its tick lease, BOT_TICK_LEASE_SECONDS); the rest is due at once.
BOT_REPLAY_CATCH_UP_CANDLES = env_int(ENV, "BOT_REPLAY_CATCH_UP_CANDLES", 50, minimum=1)

# --- Auth ------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
API_TOKEN_TTL = timedelta(hours=env_int(ENV, "API_TOKEN_TTL_HOURS", 24 * 7, minimum=1))
# More than LOGIN_MAX_FAILURES failed logins within LOGIN_FAILURE_WINDOW seconds, per email or
# per client IP, are refused with 429 until the window has moved on.
LOGIN_MAX_FAILURES = env_int(ENV, "LOGIN_MAX_FAILURES", 5, minimum=1)
LOGIN_FAILURE_WINDOW = env_int(ENV, "LOGIN_FAILURE_WINDOW", 60, minimum=1)
# A bot's signal webhook takes at most SIGNAL_RATE_LIMIT requests within SIGNAL_RATE_WINDOW
# seconds (a sliding window in Redis, per bot); more are refused with 429 and Retry-After.
SIGNAL_RATE_LIMIT = env_int(ENV, "SIGNAL_RATE_LIMIT", 20, minimum=1)
SIGNAL_RATE_WINDOW = env_int(ENV, "SIGNAL_RATE_WINDOW", 60, minimum=1)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- TLS and proxies (docs/operations.md, "Safe defaults") -----------------------------------
# HTTPS=true when browsers reach the site over TLS (a proxy in TRUSTED_PROXIES terminating it, or
# otherwise): cookies travel only over TLS, HSTS is sent and plain http is redirected. Off (the
# default), a plain-http run such as `make run` on 127.0.0.1 keeps its cookies working; then
# `check --deploy` names exactly these settings.
HTTPS = env_bool(ENV, "HTTPS", default=False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
# Probes and scrapes come over plain http from the machine itself.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int(ENV, "HSTS_SECONDS", 31_536_000, minimum=0) if HTTPS else 0
# Both commit more than this site (every subdomain; browsers' built-in list): opt in.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool(ENV, "HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env_bool(ENV, "HSTS_PRELOAD", default=False)
# Not SECURE_PROXY_SSL_HEADER: Django would believe X-Forwarded-Proto from anyone. The scheme
# and the client address come from X-Forwarded-Proto/-For only when the peer is one of these
# (tradingbot/proxy.py). Comma-separated addresses or networks; empty: nobody is believed.
TRUSTED_PROXIES = env_networks(ENV, "TRUSTED_PROXIES")

# --- REST framework --------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["tradingbot.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "tradingbot.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Trading bot platform API",
    "DESCRIPTION": "Multi-user crypto trading bots: accounts, exchange accounts, bots, backtests.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No badge image from validator.swagger.io: the CSP allows this site's images only, and the
    # schema's URL is nobody else's business.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status" or "side" choice; name each enum instead of hashing it.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "backtests.models.RunStatus",
        "BotStatusEnum": "bots.models.Bot.Status",
        "OrderStatusEnum": "bots.models.Order.Status",
        "OrderSideEnum": "bots.models.Order.Side",
        # long / short: a position's side and a backtest trade's
        "PositionSideEnum": "bots.models.Position.Side",
        # live / replay: a bot's data source, and the clock of its equity curve
        "DataSourceEnum": "bots.models.Bot.DataSource",
    },
    # The 401 of every authenticated operation, the 400/413/415 of every body (tradingbot.openapi).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tradingbot.openapi.document_common_errors",
    ],
}

# Extra strategy modules (dotted paths) loaded with the built-ins at start-up; a broken one
# stops start-up with an error naming it.
STRATEGY_MODULES = env_list(ENV, "STRATEGY_MODULES", default=[])

# Bodies above this are refused (413) before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
# JSON bodies nested deeper than this (arrays and objects) are refused (400 malformed_request) by
# tradingbot.parsers.JSONParser: no API body is more than a few levels deep, and a deep one
# would make every walk over it recursive (1,000 levels was a RecursionError, a 500).
JSON_MAX_DEPTH = 32

# --- i18n / time -----------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ----------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request without it
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
CSRF_FAILURE_VIEW = "tradingbot.errors.csrf_failure"
