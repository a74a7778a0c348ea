"""The one line that ends a failed task's log: what failed, why, and what to do about it.

Airflow logs the traceback, then runs the failure (or retry) callback: a line logged there is the last thing a user
reads in the grid view. The suite's exceptions carry a `hint` (what the user does next); a task that re-raises one
as Airflow's fail-now keeps it as the chained exception, so the line names the suite's error, not Airflow's wrapper.
"""

from __future__ import annotations

# Exceptions that are not the suite's, by class name: what a user does about them.
FOREIGN_HINTS: dict[str, str] = {
    "AirflowTaskTimeout": "the task ran past its execution_timeout: give it more time or fewer models per shard "
                          "(fleet.shard_size), then clear it",
    "MemoryError": "the worker ran out of memory: lower training.pool_slots or give the worker more memory, then "
                   "clear the task",
    "OperationalError": "a database did not answer: check the Airflow metadata DB and the suite's SQL store "
                        "(storage.state_url); Airflow retries the task",
    "ConnectionError": "a server did not answer: check the service named above; Airflow retries the task",
}
FAILURE_MARK = " | what to do: "  # what `market-mlops run` looks for in a failed run's output
GENERIC_HINT = "read the traceback above; fix the cause, then clear the task in the grid view to run it again"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: set[int] = set()
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def is_permanent(exc: BaseException) -> bool:
    """A failure no retry can fix: an exception in the chain says so (`retryable = False`: a wrong config value, a
    version that does not exist, data a retry cannot bring). Outages (a server, the network) stay retryable."""
    return any(getattr(e, "retryable", True) is False for e in _chain(exc))


def explaining_error(exc: BaseException) -> BaseException:
    """The exception that says what went wrong: the first in the chain (the raised one, then what it was raised
    from or while handling) that carries a hint, else the raised one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "hint", None) or type(current).__name__ in FOREIGN_HINTS:
            return current
        current = current.__cause__ or current.__context__
    return exc


def what_to_do(exc: BaseException) -> str:
    error = explaining_error(exc)
    return str(getattr(error, "hint", None) or FOREIGN_HINTS.get(type(error).__name__, GENERIC_HINT))


def failure_line(task: str, exc: BaseException | None, try_number: int, tries: int, will_retry: bool) -> str:
    """`<task> failed (try n of m): <Error>: <message> | what to do: <hint>`; a retry says Airflow retries first."""
    if exc is None:
        return f"{task} failed (try {try_number} of {tries}): no exception recorded{FAILURE_MARK}{GENERIC_HINT}"
    error = explaining_error(exc)
    message = " ".join(str(error).split())[:1500] or "(no message)"
    hint = what_to_do(exc)
    if will_retry:
        hint = f"Airflow retries it (try {try_number + 1} of {tries} next); if that fails too: {hint}"
    return f"{task} failed (try {try_number} of {tries}): {type(error).__name__}: {message}{FAILURE_MARK}{hint}"
