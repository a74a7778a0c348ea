"""The last line of a failed task's log: the suite's error (not Airflow's wrapper), its message, what to do."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import market_mlops
from market_mlops.monitoring.failures import FAILURE_MARK, GENERIC_HINT, explaining_error, failure_line
from market_mlops.tasks.retrain import NoDataVersion


def _fail_now_from(error: Exception) -> Exception:
    """What the DAG files do with bad data: re-raise as Airflow's fail-now `from None` (a short traceback)."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        try:
            raise error
        except Exception as caught:
            raise AirflowFailException(str(caught)) from None
    except AirflowFailException as wrapped:
        return wrapped


def test_the_line_names_the_suites_error_under_airflows_wrapper_and_says_what_to_do():
    wrapped = _fail_now_from(NoDataVersion("no data version logged up to 2024-05-31T00:00:00+00:00"))
    assert explaining_error(wrapped).__class__ is NoDataVersion
    line = failure_line("resolve_data_version", wrapped, 1, 3, will_retry=False)
    assert line == ("resolve_data_version failed (try 1 of 3): NoDataVersion: no data version logged up to "
                    f"2024-05-31T00:00:00+00:00{FAILURE_MARK}{NoDataVersion.hint}")


def test_a_retried_try_says_airflow_retries_it_first():
    line = failure_line("check_drift", ConnectionError("mlflow:5000 refused"), 2, 3, will_retry=True)
    assert line.startswith("check_drift failed (try 2 of 3): ConnectionError: mlflow:5000 refused | what to do: "
                           "Airflow retries it (try 3 of 3 next); if that fails too: a server did not answer")


def test_an_unknown_error_points_at_the_traceback_and_multiline_messages_stay_one_line():
    line = failure_line("t", ValueError("a\n  b"), 1, 1, will_retry=False)
    assert line == f"t failed (try 1 of 1): ValueError: a b{FAILURE_MARK}{GENERIC_HINT}"


def _suite_exceptions() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.walk_packages(market_mlops.__path__, "market_mlops."):
        if ".dev." in info.name or info.name.endswith((".cli", ".__main__")):
            continue
        module = importlib.import_module(info.name)
        found += [obj for obj in vars(module).values() if isinstance(obj, type) and issubclass(obj, Exception)
                  and obj.__module__ == info.name]
    return found


def test_every_error_the_suite_raises_to_a_task_carries_what_to_do():
    """A new exception class without a hint would end its task's log with the generic line."""
    errors = _suite_exceptions()
    assert len(errors) >= 10, errors
    missing = [f"{e.__module__}.{e.__name__}" for e in errors if not getattr(e, "hint", None)
               and not e.__name__.startswith("_")]
    assert set(missing) <= ALLOWED_WITHOUT_HINT, missing


# Raised and handled inside the suite; never reach a task's end.
ALLOWED_WITHOUT_HINT = {"market_mlops.tasks.importing.NothingToImport", "market_mlops.tasks.importing.AmbiguousFiles"}


@pytest.mark.parametrize("name", sorted(ALLOWED_WITHOUT_HINT))
def test_the_exceptions_allowed_without_a_hint_exist(name):
    module, cls = name.rsplit(".", 1)
    assert hasattr(importlib.import_module(module), cls)


def test_a_failure_no_retry_can_fix_is_permanent_and_an_outage_is_not():
    from market_mlops.config import ConfigError
    from market_mlops.monitoring.failures import is_permanent
    from market_mlops.registry.store import RegistryError, RegistryRefusal
    from market_mlops.tasks.drift_check import StaleData
    from market_mlops.tasks.retrain import NoDataVersion
    from market_mlops.tasks.shards import ModelFailure, ShardFailed

    for error in (ConfigError("x"), StaleData("x"), NoDataVersion("x"), RegistryRefusal("x", "do y")):
        assert is_permanent(error)
    try:
        try:
            raise ConfigError("horizons [1] unknown")
        except ConfigError as error:
            raise RuntimeError("wrapped") from error
    except RuntimeError as wrapped:
        assert is_permanent(wrapped)  # the cause decides
    for error in (RegistryError("the server did not answer"), ConnectionError("refused"), OSError("disk")):
        assert not is_permanent(error)
    assert not ShardFailed([ModelFailure("A d1", ValueError("too few rows")),
                            ModelFailure("B d1", RegistryRefusal("no v9", "name one"))], 0).retryable
    assert ShardFailed([ModelFailure("A d1", ConnectionError("refused"))], 0).retryable


def test_a_permanent_failure_fails_the_task_at_once_with_the_suite_error_chained():
    import pytest
    from airflow.sdk.exceptions import AirflowFailException

    from market_mlops.monitoring.failures import failure_line
    from market_mlops.orchestration import fail_now_when_permanent
    from market_mlops.registry.store import RegistryRefusal

    @fail_now_when_permanent
    def refused(params=None):
        raise RegistryRefusal("SPY-d1-direction: champion v1 replaced no earlier version", "name one: --to-version N")

    @fail_now_when_permanent
    def outage(params=None):
        raise ConnectionError("mlflow:5000 refused")

    with pytest.raises(AirflowFailException) as failed:
        refused(params={})
    line = failure_line("rollback_champion", failed.value, 1, 2, will_retry=False)
    assert line == ("rollback_champion failed (try 1 of 2): RegistryRefusal: SPY-d1-direction: champion v1 replaced no "
                    "earlier version | what to do: name one: --to-version N")
    with pytest.raises(ConnectionError):
        outage(params={})
    import inspect

    assert list(inspect.signature(refused).parameters) == ["params"]  # Airflow still sees the task's own arguments
