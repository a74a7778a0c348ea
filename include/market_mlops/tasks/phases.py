"""Seconds per phase of a task, marked as it goes: recorded with its result (a retrain's summary, a drift check's
record), where the task's log, `make bench` and `make bench-cluster` read them."""

from __future__ import annotations

import time


class PhaseClock:
    """`mark(phase)` ends a phase that began at the previous mark (or at creation)."""

    def __init__(self) -> None:
        self._marks = [("start", time.perf_counter())]

    def mark(self, phase: str) -> None:
        self._marks.append((phase, time.perf_counter()))

    def seconds(self) -> dict[str, float]:
        return {phase: round(t - self._marks[i][1], 3) for i, (phase, t) in enumerate(self._marks[1:])}
