# One image for every process of the platform: daphne, the Celery workers and beat, and the
# manage.py commands (migrate, seed_demo, smoke_check). Configured by the environment only
# (docs/operations.md, "Topology and scaling"); compose.yaml runs it.
#
# No image registry is reachable here: the base is local/debian:12, made with debootstrap
# (deploy/compose-check builds it when it is missing). pip reaches PyPI through a proxy that
# re-signs certificates, so the build stages trust the host's CA bundle, ./ca.crt (copied by
# deploy/compose-check, kept out of git); the final image never contains it.

# --- base: the Python runtime every stage shares ------------------------------------------------
FROM local/debian:12 AS base
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# --- deps: the third-party packages (rebuilt only when pyproject.toml changes) ---------------
FROM base AS deps
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
COPY ca.crt /etc/ssl/certs/host-ca.crt
ENV PIP_CERT=/etc/ssl/certs/host-ca.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DEFAULT_TIMEOUT=120
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --quiet --upgrade pip
COPY pyproject.toml /tmp/pyproject.toml
# The project's own dependencies, read from pyproject.toml, plus its build backend (the app
# stage then builds without fetching anything).
RUN python3 -c 'import tomllib; p = tomllib.load(open("/tmp/pyproject.toml", "rb")); \
print("\n".join(p["project"]["dependencies"] + p["build-system"]["requires"]))' \
        > /tmp/requirements.txt \
    && /opt/venv/bin/pip install --quiet -r /tmp/requirements.txt wheel

# --- app: the project, installed (not editable), and its static files collected -------------
FROM deps AS app
COPY . /src
WORKDIR /src
# Installed under /approot, exactly where the files go in the venv, so that the final stage
# copies the project alone onto the venv it already has (the dependencies' layer stays cached).
# settings.BASE_DIR is the directory above the packages: the templates and the static sources
# go next to them there.
RUN /opt/venv/bin/pip install --quiet --no-deps --no-build-isolation --root /approot . \
    && site=/approot$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
    && cp -r templates static "$site"/ \
    && mkdir -p /approot/app && cp manage.py /approot/app/ \
    && PYTHONPATH="$site" DEBUG=false SECRET_KEY=collectstatic-only \
        FIELD_ENCRYPTION_KEY=collectstatic-only TRADINGBOT_VAR_DIR=/approot/var/lib/tradingbot \
        /opt/venv/bin/python manage.py collectstatic --no-input --verbosity 0

# --- the image ---------------------------------------------------------------------------------
FROM base
LABEL org.opencontainers.image.title="tradingbot" \
      org.opencontainers.image.description="Trading-bot platform: daphne, Celery worker or beat, manage.py"
RUN useradd --uid 10001 --user-group --home-dir /app --no-create-home tradingbot
COPY --from=deps /opt/venv /opt/venv
COPY --from=app /approot/ /
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=tradingbot.settings \
    TRADINGBOT_VAR_DIR=/var/lib/tradingbot \
    DEBUG=false
WORKDIR /app
USER tradingbot
# compose.yaml gives each service its own command; alone, the image serves HTTP on 8000.
CMD ["daphne", "--bind", "127.0.0.1", "--port", "8000", "tradingbot.asgi:application"]
