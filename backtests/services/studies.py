"""Optuna's side of an optimisation: the storage every worker shares, the sampler, the study.

The storage is Optuna's RDB storage on the project's database server: on PostgreSQL the very
database Django uses (Optuna's own tables, ``studies``, ``trials``..., beside the project's), so
the workers of every machine share one study; on the embedded SQLite default a second SQLite
file beside the project's (``db.sqlite3`` → ``db.sqlite3-optuna``) in WAL mode, which the
worker processes of this machine share without blocking Django's writes. ``OPTUNA_STORAGE_URL``
points it anywhere else SQLAlchemy reaches.

The storage runs Optuna's heartbeat: a worker's trial stamps its row every
``OPTUNA_HEARTBEAT_SECONDS``, and a trial whose stamp is older than ``OPTUNA_GRACE_SECONDS``
(its worker died) is failed by the next ``optimize`` of any worker; ``on_stale_trial`` then
records it failed here too.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import optuna
from django.conf import settings
from django.db import connection
from optuna.storages import RDBStorage

from backtests.search_space import Dimension

logger = logging.getLogger(__name__)

_storages: dict[str, RDBStorage] = {}
_lock = threading.Lock()
# What to do with a trial the heartbeat failed (set by backtests.services.optimization_trials).
_on_stale_trial: list[Callable[[Any, Any], None]] = []


def on_stale_trial(callback: Callable[[Any, Any], None]) -> None:
    _on_stale_trial[:] = [callback]


def _stale_trial(study: Any, trial: Any) -> None:
    for callback in _on_stale_trial:
        callback(study, trial)


def storage_url() -> str:
    """``OPTUNA_STORAGE_URL``, else the database Django is connected to (its test database
    under the tests), as SQLAlchemy spells it."""
    if settings.OPTUNA_STORAGE_URL:
        return str(settings.OPTUNA_STORAGE_URL)
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}-optuna"
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgresql+psycopg://{auth}@{host}/{db['NAME']}"


def storage() -> RDBStorage:
    """This process's storage on :func:`storage_url` (created once; Optuna creates its tables on
    first use)."""
    url = storage_url()
    with _lock:
        found = _storages.get(url)
        if found is None:
            found = _storages[url] = _new_storage(url)
    return found


def _new_storage(url: str) -> RDBStorage:
    sqlite = url.startswith("sqlite")
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": 60}} if sqlite else {"pool_pre_ping": True}
    )
    with _experimental_allowed():
        found = _rdb_storage(url, engine_kwargs)
    if sqlite:  # persistent on the file: readers never wait for the writing worker
        with found.engine.connect() as sqlite_connection:
            sqlite_connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    return found


def _rdb_storage(url: str, engine_kwargs: dict[str, Any]) -> RDBStorage:
    return RDBStorage(
        url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=settings.OPTUNA_HEARTBEAT_SECONDS,
        grace_period=settings.OPTUNA_GRACE_SECONDS,
        heartbeat_stale_trial_callback=_stale_trial,
    )


def close() -> None:
    """Close every storage's connections (so that a database can be dropped: the test suite's)."""
    with _lock:
        for found in _storages.values():
            found.remove_session()
            found.engine.dispose()
        _storages.clear()


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail the study's trials whose heartbeat stopped (their worker died)."""
    with _experimental_allowed():
        optuna.storages.fail_stale_trials(study)


@contextlib.contextmanager
def _experimental_allowed() -> Iterator[None]:
    """The heartbeat and failing its stale trials are "experimental" in Optuna 5 (since 2.9):
    we rely on both, knowingly, without a warning each time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def quiet_optuna() -> None:
    """Optuna's own log lines (one per trial) go through our logging at WARNING and above."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


def make_sampler(
    name: str,
    *,
    space: Mapping[str, Dimension],
    trial_count: int,
    seed: int | None,
) -> optuna.samplers.BaseSampler:
    """The named sampler. TPE and NSGA-II prefer feasible trials: those whose constraint (set by
    the trial: fewer than ``min_trades`` trades is above 0) is met."""
    if name == "grid":
        values = {key: dimension.grid_values() for key, dimension in space.items()}
        return optuna.samplers.GridSampler(values, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        population = max(4, min(50, trial_count // 4))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    # TPE: "constant liar" keeps workers that sample at once from all picking the same point.
    return optuna.samplers.TPESampler(
        seed=seed,
        multivariate=True,
        constant_liar=True,
        n_startup_trials=max(2, min(10, trial_count // 3)),
    )


def study(name: str, *, directions: int, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """The study ``name`` (created by whichever worker comes first)."""
    return optuna.create_study(
        storage=storage(),
        study_name=name,
        directions=["maximize"] * directions,
        sampler=sampler,
        load_if_exists=True,
    )


def suggest(trial: optuna.Trial, dimension: Dimension) -> Any:
    """The trial's value of one searched parameter."""
    if dimension.kind == "choice":
        return trial.suggest_categorical(dimension.name, list(dimension.choices))
    if dimension.low is None or dimension.high is None:
        raise ValueError(f"{dimension.name}: a range needs low and high")
    if dimension.kind == "int":
        return trial.suggest_int(
            dimension.name,
            int(dimension.low),
            int(dimension.high),
            step=int(dimension.step or 1),
            log=dimension.log,
        )
    return trial.suggest_float(
        dimension.name, dimension.low, dimension.high, step=dimension.step, log=dimension.log
    )


def param_importances(name: str) -> dict[str, float]:
    """How much each parameter matters to the first objective, as shares summing to 1 (Optuna's
    PED-ANOVA, which looks at what sets the best trials apart; it ranks low values best, so it
    is given the objective negated); empty when there are too few trials to tell."""
    try:
        loaded = optuna.load_study(study_name=name, storage=storage())
        with warnings.catch_warnings():  # it warns whenever a target is given: ours is negated
            warnings.simplefilter("ignore", UserWarning)
            importances = optuna.importance.get_param_importances(
                loaded, target=lambda trial: -trial.values[0]
            )
    except (RuntimeError, ValueError) as exc:
        logger.info("optimization.importances_skipped", extra={"study": name, "why": str(exc)})
        return {}
    return {key: round(float(value), 6) for key, value in importances.items()}


def delete(name: str) -> None:
    """Forget the study (a deleted optimisation); nothing if it was never created."""
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=storage())
