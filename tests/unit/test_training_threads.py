"""Threads per fit follow the deployment: all the fits a worker runs at once fit in its cores."""

from __future__ import annotations

import pytest

from market_mlops.config import load_config
from market_mlops.model.training import fit_threads, threads_per_fit, worker_cores


@pytest.mark.parametrize(("cores", "at_once", "threads"), [(2, 2, 1), (2, 1, 2), (16, 2, 8), (16, 3, 5), (1, 4, 1)])
def test_fits_running_at_once_never_hold_more_threads_than_cores(cores, at_once, threads):
    assert threads_per_fit(cores, at_once) == threads
    assert threads_per_fit(cores, at_once) * min(at_once, cores) <= cores


def test_the_worker_concurrency_caps_the_pool_and_the_config_wins(monkeypatch):
    monkeypatch.delenv("MLOPS__TRAINING__FITS_PER_WORKER", raising=False)
    cores = worker_cores()
    cfg = load_config(environ={"MLOPS__TRAINING__POOL_SLOTS": "4"}).training
    monkeypatch.delenv("AIRFLOW__CELERY__WORKER_CONCURRENCY", raising=False)
    assert fit_threads(cfg) == max(1, cores // 4)
    monkeypatch.setenv("AIRFLOW__CELERY__WORKER_CONCURRENCY", "1")  # this worker runs one task at a time
    assert fit_threads(cfg) == cores
    one = load_config(environ={"MLOPS__TRAINING__POOL_SLOTS": "4", "MLOPS__TRAINING__FITS_PER_WORKER": "2"}).training
    assert fit_threads(one) == max(1, cores // 2)
