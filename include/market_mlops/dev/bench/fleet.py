"""The monthly retrain as a user runs it, and what a fleet of 2,000 models costs (issues 16, 18 and 33).

`retrain_dag` ingests 15 symbols x {d1, h1} with the ingestion DAG, runs the `model_retrain` DAG itself (dag.test on
the embedded stack, the suite's default training config) and the `drift_check` DAG after it, and reads back what
each mapped task spent: the phases every retrain records (features, fit, evaluate, MLflow logging, gate,
registration, promotion), the task's duration beside them, and each drift check. `slots` trains the same models with
the training pool at 1 slot (one model at a time, every core for its fits) and at 2 (two at once, one thread per
fit). `projection` turns per-model costs into the wall time of a 2,000-model retrain and drift check on 1, 4 and 16
Celery workers of 2 cores: `make bench-cluster` calls it with what the cluster tier measures on the production path
(Celery, the authenticated MLflow server, S3, PostgreSQL) and the default config's fit measured here.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from market_mlops.dev.bench.figures import figure_row

SYMBOLS = ["SPY", "AAPL", "MSFT", "AMZN", "GOOG", "META", "NVDA", "JPM", "XOM", "JNJ", "PG", "XLF", "XLE", "QQQ", "IWM"]
TIMEFRAMES = ["d1", "h1"]
HISTORY_UNTIL, CUTOFF, DRIFT_SESSION = dt.date(2025, 9, 30), dt.date(2025, 10, 1), dt.date(2025, 11, 14)
FLEET, WORKERS, CORES = 2_000, (1, 4, 16), 2
# The default config's fit of one d1 model, alone on a 2-core machine (2 threads), and how much longer it takes when
# two share the machine: `make bench` ("fit per model d1", "training pool 2 slots"), 2026-12-02. A fit is CPU work,
# the same on either stack; the cluster tier trains a smaller config, so its own fit does not stand for the default.
DEFAULT_FIT_S, SHARED_WORKER_SLOWDOWN = 0.94, 1.73


@dataclass(frozen=True)
class PerModelCosts:
    """What one model costs in a mapped task, and where each figure was measured."""

    task_overhead_s: float  # a retrain task's start and teardown under Celery (cluster tier)
    beside_fit_s: float  # features, evaluation, MLflow logging, gate, registration, promotion (cluster tier)
    fit_s: float  # the default config's fit with two tasks on the worker (make bench)
    drift_task_overhead_s: float  # a drift task's start, teardown and shard reads (cluster tier)
    drift_champion_s: float  # one champion's check, its files cached: load, window, score, measure, report (cluster tier)


def _stack_env(home: Path) -> dict[str, str]:
    from market_mlops.dev.local_stack import stack_environment

    return {**{k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AIRFLOW"))},
            **stack_environment(home), "MLOPS__UNIVERSE__SYMBOLS": ",".join(SYMBOLS),
            "MLOPS__UNIVERSE__TIMEFRAMES": ",".join(TIMEFRAMES), "MLOPS__UNIVERSE__BENCHMARK": "SPY",
            "MLOPS__UNIVERSE__CALENDARS": "{}", "MLOPS__SOURCE__KIND": "synthetic"}


def _market_mlops(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "market_mlops.cli", *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"market-mlops {' '.join(args)} failed: {out.stderr[-1500:]}")
    return time.perf_counter() - started


def _task_durations(home: Path, dag_id: str, task_id: str) -> list[float]:
    import sqlite3

    with sqlite3.connect(home / "airflow" / "airflow.db") as con:
        rows = con.execute("SELECT duration FROM task_instance WHERE dag_id=? AND task_id=? AND state='success'",
                           (dag_id, task_id)).fetchall()
    return [float(d) for (d,) in rows if d is not None]


def _summaries(home: Path) -> list[dict[str, Any]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow/mlflow.db")
    experiment = client.get_experiment_by_name("market-direction")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return [json.loads(r.data.tags["mlops.summary"]) for r in runs if "mlops.summary" in r.data.tags]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def retrain_dag(home: Path) -> dict[str, Any]:
    """Ingest, retrain (the default gate: a model that is not proven leaves its series to the better baseline, which
    the drift check then checks like a model), drift check."""
    env = _stack_env(home)
    history = _market_mlops(env, "run", "market_data_ingestion", "--date", HISTORY_UNTIL.isoformat(),
                            "--conf", json.dumps({"history_start": "2018-01-02"}))
    retrain = _market_mlops(env, "run", "model_retrain", "--date", CUTOFF.isoformat(),
                            "--conf", json.dumps({"force_promotion": False, "reason": "bench"}))
    catch_up = _market_mlops(env, "run", "market_data_ingestion", "--date", DRIFT_SESSION.isoformat(),
                             "--conf", json.dumps({"history_start": CUTOFF.isoformat()}))
    drift = _market_mlops(env, "run", "drift_check", "--date", DRIFT_SESSION.isoformat())
    summaries = _summaries(home)
    tasks = _task_durations(home, "model_retrain", "retrain_model")
    checks = _task_durations(home, "drift_check", "check_model_drift")
    phases = {p: [s["seconds"][p] for s in summaries] for p in summaries[0]["seconds"]}
    work = [sum(s["seconds"].values()) for s in summaries]
    return {"models": len(summaries), "retrain_s": retrain, "ingest_s": history + catch_up, "drift_s": drift,
            "served": served_log_loss(summaries),
            "phases": {p: _median(v) for p, v in phases.items()},
            "fit_by_timeframe": {tf: _median([s["seconds"]["fit"] for s in summaries if s["timeframe"] == tf])
                                 for tf in TIMEFRAMES},
            "work_s": _median(work), "task_s": _median(tasks), "task_overhead_s": _median(tasks) - _median(work),
            "drift_check_s": _median(checks)}


def served_log_loss(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Each series' served champion (its model when promoted, else its baseline) against climatology on the same
    holdout, and the trained models' calibrated log-loss against climatology whatever the gate decided."""
    served, models = [], []
    for s in summaries:
        climatology = float(s.get("climatology_log_loss", float("nan")))
        model = float(s.get("challenger_log_loss", s.get("log_loss", float("nan"))))
        models.append(model - climatology)
        if s.get("serving") == "baseline":
            rule = str(s.get("baseline_rule") or s.get("baseline_compared") or "climatology")
            served.append(("baseline", float(s.get(f"{rule}_log_loss", climatology)) - climatology))
        else:
            served.append(("model", model - climatology))
    margins = [m for _, m in served]
    return {"count": len(served), "models": sum(1 for k, _ in served if k == "model"),
            "worse": sum(1 for m in margins if m > 1e-9), "worst": max(margins, default=float("nan")),
            "trained_median": _median(models) if models else float("nan"),
            "trained_max": max(models, default=float("nan")),
            "trained_worse": sum(1 for m in models if m > 0)}


def slots(home: Path, models: list[tuple[str, str]]) -> dict[str, float]:
    """The same models trained with the training pool at 1 slot (one at a time, every core for its fits) and at 2
    (two processes at once, one thread per fit), on the data `retrain_dag` versioned (later cutoffs: new run keys).
    Each process times its own training after its imports; returns per-model latencies at 1 and 2 at once."""
    env = _stack_env(home)
    data = _training_data(env)
    script = ("import json, sys, time; from market_mlops.tasks.retrain import retrain_model; "
              "data, pairs = json.loads(sys.argv[1]), json.loads(sys.argv[2]); t = time.perf_counter(); "
              "[retrain_model(s, tf, data) for s, tf in pairs]; print(json.dumps(time.perf_counter() - t))")

    def run(groups: list[list[tuple[str, str]]], fits_at_once: int, day: int) -> float:
        dated = data | {"interval_end": dt.datetime(2025, 10, day, tzinfo=dt.UTC).isoformat()}
        procs = [subprocess.Popen([sys.executable, "-c", script, json.dumps(dated), json.dumps(g)],
                                  env={**env, "MLOPS__TRAINING__FITS_PER_WORKER": str(fits_at_once)},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for g in groups]
        seconds = []
        for proc in procs:
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"slot run failed: {err[-1500:]}")
            seconds.append(float(out.strip().splitlines()[-1]))
        return max(seconds)

    one = run([models], 1, 2)
    two = run([models[0::2], models[1::2]], 2, 3)
    return {"one_slot_s": one, "two_slots_s": two, "per_model_one": one / len(models),
            "per_model_two": two / (len(models) / 2), "models": len(models)}


def _training_data(env: dict[str, str]) -> dict[str, str]:
    """The data version of the retrain's cutoff, resolved (and materialized) in a process of the bench's stack."""
    code = ("import json, datetime as dt; from market_mlops.tasks.retrain import resolve_data_version; "
            "print(json.dumps(resolve_data_version(dt.datetime(2025, 10, 1, tzinfo=dt.UTC))))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def projection(costs: PerModelCosts, per_shard: int) -> list[dict[str, Any]]:
    """Wall time of a 2,000-model retrain and drift check on W workers of 2 cores, each running 2 tasks at once (the
    training pool sized to 2 x W): waves of 2 x W shard tasks, each its start/teardown plus its models one after
    another. Assumes the MLflow server, PostgreSQL and S3 keep up with 2 x W tasks at once (the cluster tier measures
    them with 2): size the server's workers and database with the fleet."""
    tasks = math.ceil(FLEET / per_shard)
    rows = []
    for workers in WORKERS:
        waves = math.ceil(tasks / (workers * CORES))
        rows.append({"workers": workers, "tasks": tasks,
                     "retrain_s": waves * (costs.task_overhead_s + per_shard * (costs.fit_s + costs.beside_fit_s)),
                     "drift_s": waves * (costs.drift_task_overhead_s + per_shard * costs.drift_champion_s)})
    return rows


def projection_table(costs: PerModelCosts) -> str:
    """The projection as `make bench-cluster` prints it (and docs/dags.md shows it), with its inputs."""
    from market_mlops.config import Fleet

    per_shard = Fleet().size_for(FLEET)
    lines = [f"2,000 models as {math.ceil(FLEET / per_shard)} shards of {per_shard}, 2 tasks at once per 2-core worker; "
             f"per model: fit {costs.fit_s:.2f} s (default config, two fits sharing a worker: make bench), "
             f"the rest of its retrain {costs.beside_fit_s:.2f} s and {costs.task_overhead_s:.2f} s start/teardown a "
             f"task, drift {costs.drift_champion_s:.3f} s a champion (its files in the worker's cache, as between "
             f"retrains) and {costs.drift_task_overhead_s:.2f} s a task "
             "(cluster tier: Celery, MLflow with basic-auth, S3, PostgreSQL)",
             "| Celery workers (2 cores each) | monthly retrain | one drift check |", "|---|---|---|"]
    for p in projection(costs, per_shard):
        lines.append(f"| {p['workers']} | {p['retrain_s'] / 60:.1f} min | {p['drift_s'] / 60:.1f} min |")
    return "\n".join(lines)


def fleet_figures() -> list[dict[str, Any]]:
    """The rows `make bench` prints for issue 16 (the retrain DAG, slots) and the fit figures the projection takes."""

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        measured = retrain_dag(home)
        slot = slots(home, [(s, "d1") for s in SYMBOLS[:6]])
    rows = [
        figure_row("retrain DAG, 15 symbols x {d1, h1}", measured["retrain_s"], "s", "", None,
             f"{measured['models']} models through model_retrain (dag.test, default config and gate)"),
        figure_row("served champions with holdout log-loss above climatology's", measured["served"]["worse"], "of "
             f"{measured['served']['count']}", "0", measured["served"]["worse"] == 0,
             f"{measured['served']['models']} models and {measured['served']['count'] - measured['served']['models']} "
             f"baselines serve; worst margin {measured['served']['worst']:+.4f} nats"),
        figure_row("  trained models' calibrated log-loss minus climatology's (median)", measured["served"]["trained_median"],
             "nats", "", None, f"max {measured['served']['trained_max']:+.4f}; "
             f"{measured['served']['trained_worse']} of {measured['models']} above it (the gate serves none of those)"),
        figure_row("  per mapped task (median)", measured["task_s"], "s", "", None,
             "phases: " + ", ".join(f"{p} {v:.2f}" for p, v in measured["phases"].items())),
        figure_row("  fit per model d1 / h1 (median)", measured["fit_by_timeframe"]["d1"], "s", "", None,
             f"h1 {measured['fit_by_timeframe']['h1']:.2f} s (fleet.DEFAULT_FIT_S: {DEFAULT_FIT_S})"),
        figure_row("  overhead per mapped task (median)", measured["task_overhead_s"], "s", "", None,
             "task duration minus its model's phases in dag.test (under Celery: make bench-cluster)"),
        figure_row(f"drift check DAG, {measured['models']} champions", measured["drift_s"], "s", "", None,
             f"per champion {measured['drift_check_s']:.2f} s (median mapped task)"),
        figure_row("training pool 1 slot, 6 d1 models", slot["one_slot_s"], "s", "", None,
             f"one at a time, 2 threads per fit: {slot['per_model_one']:.2f} s a model"),
        figure_row("training pool 2 slots, same models", slot["two_slots_s"], "s", "", None,
             f"two at once, 1 thread per fit: {slot['per_model_two']:.2f} s a model each, "
             f"x{slot['one_slot_s'] / slot['two_slots_s']:.2f} throughput, "
             f"{slot['per_model_two'] / slot['per_model_one']:.2f}x as long each "
             f"(fleet.SHARED_WORKER_SLOWDOWN: {SHARED_WORKER_SLOWDOWN}); the 2,000-model projection: make bench-cluster"),
    ]
    return rows
