"""Working through a shard of models one after another: one model's failure does not stop the others; the shard
fails at the end naming every model that failed, and its retry redoes only those (the others are found done)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True)
class ModelFailure:
    model: str
    error: Exception


class ShardFailed(RuntimeError):
    """Some models of a shard failed; the message names each with its error."""

    hint = ("fix what each model's error names; clearing the task (or Airflow's retry) redoes only the "
            'models that failed')

    def __init__(self, failures: list[ModelFailure], done: int) -> None:
        self.failures = failures
        named = "; ".join(f"{f.model}: {type(f.error).__name__}: {str(f.error)[:300]}" for f in failures)
        super().__init__(f"{len(failures)} of {len(failures) + done} models failed: {named}")

    @property
    def retryable(self) -> bool:
        """False when every failure is one no retry can fix (bad input, a ValueError: too little history, a missing
        class; or a permanent error: a wrong config value, a refused version): the task should fail at once instead
        of waiting for its retries."""
        from market_mlops.monitoring.failures import is_permanent

        return any(not isinstance(f.error, ValueError) and not is_permanent(f.error) for f in self.failures)


def run_shard(items: Sequence[Item], name: Callable[[Item], str], work: Callable[[Item], Result]) -> list[Result]:
    """`work` on each item in order; every failure is logged with its traceback and the rest go on."""
    results, failures = work_through(items, name, work)
    if failures:
        raise ShardFailed(failures, len(results))
    return results


def work_through(items: Sequence[Item], name: Callable[[Item], str],
                 work: Callable[[Item], Result]) -> tuple[list[Result], list[ModelFailure]]:
    """`run_shard` that returns the failures instead of raising them, for a shard with work left after its models
    (the drift check logs its reports and alerts for the champions that were checked)."""
    results: list[Result] = []
    failures: list[ModelFailure] = []
    started = time.perf_counter()
    for item in items:
        try:
            results.append(work(item))
        except Exception as error:  # noqa: BLE001 - one model's failure must not stop the others
            log.exception("%s failed; the shard goes on with its other models", name(item))
            failures.append(ModelFailure(name(item), error))
    log.info("shard of %d models: %d done, %d failed in %.1f s", len(items), len(results), len(failures),
             time.perf_counter() - started)
    return results, failures
