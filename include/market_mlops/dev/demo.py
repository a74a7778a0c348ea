"""The end-to-end demo: a user's path through every DAG of the suite, in lifecycle order, on the embedded stack
(`make demo`).

It writes what a data vendor ships into `MLOPS_HOME/vendor/` (one daily CSV per ticker with `Adj Close`, AAPL with
a 2:1 split in its raw prices, MSFT listed in 2021, hourly files including EURUSD with its Sunday-evening bars),
imports it with `market-mlops import`, drops each later session's files into the landing folder the ingestion DAG
reads, and runs the DAGs. State lives in MLOPS_HOME (default `<repo>/.state`); a second run reuses it (every task
is idempotent), and `make clean` resets it. DAGs run in this process with `dag.test()`, each over the data
interval a scheduled run would have had. The synthetic generator only writes the vendor's files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from market_mlops.config import PipelineConfig

# Fixed demo calendar: vendor history up to the end of September 2025, then October's sessions as landing drops.
HISTORY_START = dt.date(2019, 1, 2)
LOAD_UNTIL = dt.date(2025, 9, 30)
LISTED = {"MSFT": dt.date(2021, 3, 1), "EURUSD": dt.date(2023, 1, 3)}  # a late listing; a shorter FX history
SPLITS = {"AAPL": (dt.date(2022, 6, 6), 2.0)}  # raw daily prices before it are twice today's
DAILY_SESSIONS = [dt.date(2025, 10, 1), dt.date(2025, 10, 2), dt.date(2025, 10, 3)]
CATCH_UP = (dt.date(2025, 10, 6), dt.date(2025, 11, 14))
SHIFT_AFTER = dt.date(2025, 10, 3)  # the synthetic market changes character after this session
DRIFT_SESSIONS = [dt.date(2025, 11, 12), dt.date(2025, 11, 13), dt.date(2025, 11, 14)]
RETENTION = dt.datetime(2025, 11, 16, 5, tzinfo=dt.UTC)  # the weekly run after the last drift check
REPLAY = (dt.date(2025, 9, 1), dt.date(2025, 11, 7))  # the retrain policy over the market's change (labels resolved)


@dataclass
class Step:
    dag_id: str
    label: str
    logical_date: dt.datetime
    conf: dict[str, Any] = field(default_factory=dict)
    expect_success: bool = True


def _session_run_date(day: dt.date) -> dt.datetime:
    from market_mlops.config import get_config
    from market_mlops.data.calendar import session

    return session(get_config().universe.schedule_calendar, day).close.to_pydatetime() + dt.timedelta(minutes=30)


def plan() -> list[Step]:
    steps = [Step("market_data_ingestion", f"session {d}", _session_run_date(d), {"history_start": None}) for d in DAILY_SESSIONS]
    steps.append(Step("market_data_ingestion", f"catch-up {CATCH_UP[0]}..{CATCH_UP[1]}", _session_run_date(CATCH_UP[1]),
                      {"history_start": CATCH_UP[0].isoformat()}))
    steps.append(Step("model_retrain", "monthly retrain for September 2025", dt.datetime(2025, 10, 1, tzinfo=dt.UTC),
                      {"search_trials": 0, "force_promotion": False, "until": None, "reason": "scheduled"}))
    steps.append(Step("weekly_weight_refresh", "refresh weights, week to 13 Oct", dt.datetime(2025, 10, 13, 6, tzinfo=dt.UTC)))
    steps += [Step("drift_check", f"drift check {d}", _session_run_date(d) + dt.timedelta(minutes=15)) for d in DRIFT_SESSIONS]
    steps.append(Step("model_retention", "retention, as of Sunday 16 Nov", RETENTION, {"apply": True}))
    return steps


def write_vendor_files(cfg: PipelineConfig) -> tuple[Path, int]:
    """The vendor's history download and the later sessions' landing drops (written once; a rerun keeps them)."""
    from market_mlops.data.synthetic import spec_from_config
    from market_mlops.dev.vendor_files import VendorHistory, write_history, write_session_drops

    spec = spec_from_config(cfg)
    timeframes = {tf: cfg.spec(tf).minutes for tf in cfg.universe.timeframes}
    vendor = cfg.home / "vendor"
    if not vendor.is_dir():
        write_history(VendorHistory(spec, HISTORY_START, LOAD_UNTIL, LISTED, SPLITS), cfg.universe.data_symbols,
                      timeframes, vendor)
    landing = Path(cfg.landing_uri)
    drops = 0
    if not landing.is_dir():
        drops = write_session_drops(spec, cfg.universe.data_symbols, timeframes, DAILY_SESSIONS[0], CATCH_UP[1], landing)
    return vendor, drops


def _replay(market_mlops: Any) -> bool:
    """Does the retrain policy pay? The policy replayed over the sessions around the market's change, beside the
    model trained once at the start (`market-mlops replay`, the user's command; it prints the comparison)."""
    start, end = REPLAY
    args = ["replay", "--from", start.isoformat(), "--to", end.isoformat(), "--symbol", "AAPL", "--timeframe", "h1",
            "--policy", "monthly+weekly+emergency"]
    print(f"\n$ market-mlops {' '.join(args)}", flush=True)
    started = time.perf_counter()
    quiet = logging.getLogger("market_mlops")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # the command's own output, not Airflow's task logging (setLevel: children's
    # cached levels are cleared; assigning `.level` left them at INFO)
    try:
        ok = market_mlops(args) == 0
    finally:
        quiet.setLevel(level)
    print(f"{'ok ' if ok else 'BAD'} {'market-mlops replay':<28} {'AAPL h1, ' + start.isoformat() + '..' + end.isoformat():<40} "
          f"{'success' if ok else 'failed':<8} {time.perf_counter() - started:6.1f}s", flush=True)
    return ok


def _run(dag: DAG, step: Step, log_path: str, run_after: dt.datetime | None = None) -> tuple[str, float]:
    from market_mlops.dev.local_stack import run_dag_in_process

    return run_dag_in_process(dag, step.logical_date, step.conf, log_path, run_after)


def _queued_retrains() -> list[tuple[dt.datetime, dt.datetime, dict[str, Any]]]:
    """(logical date, run after, conf) of the model_retrain runs the drift check triggered (queued, no scheduler)."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "model_retrain", DagRun.state == "queued").all()
        return [(r.logical_date, r.run_after, dict(r.conf or {})) for r in runs if r.logical_date is not None]


def _consume_asset_queue() -> int:
    """The Asset events of the demo's ingestion runs queue `model_retrain` for a scheduler; the demo ran the retrain
    those events ask for itself (a scheduler's run would find the month's run done), so it clears the queue."""
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session

    with create_session() as session:
        return int(session.query(AssetDagRunQueue).delete())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="run only steps of these DAG ids")
    args = parser.parse_args(argv)

    from market_mlops.dev.local_stack import configure_environment, ensure_airflow_db

    env = configure_environment()
    os.environ.setdefault("MLOPS__SOURCE__SYNTHETIC__SHIFT_AFTER", SHIFT_AFTER.isoformat())  # the vendor's market
    os.environ.setdefault("MLOPS__SOURCE__KIND", "landing")  # sessions arrive as drops, as in production
    from market_mlops.config import write_home_settings

    # What this home was set up with, for every later process on it (`make ui`'s DAG runs, `market-mlops`).
    write_home_settings(Path(env["MLOPS_HOME"]), {k: v for k, v in os.environ.items() if k.startswith("MLOPS__")})
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    print(f"demo state in {env['MLOPS_HOME']}", flush=True)
    ensure_airflow_db()
    print(f"Airflow metadata DB ready ({time.perf_counter() - t0:.0f}s)", flush=True)

    from market_mlops.cli import main as market_mlops
    from market_mlops.config import get_config

    vendor, drops = write_vendor_files(get_config())
    print(f"vendor history in {vendor}; {drops} session file(s) dropped in {get_config().landing_uri}", flush=True)
    started = time.perf_counter()
    print(f"$ market-mlops import {vendor}", flush=True)
    imported = market_mlops(["import", str(vendor)]) == 0
    print(f"{'ok ' if imported else 'BAD'} {'market-mlops import':<28} {'vendor history':<40} "
          f"{'success' if imported else 'failed':<8} {time.perf_counter() - started:6.1f}s", flush=True)
    if not imported:
        return 1

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=env["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        for path, error in bag.import_errors.items():
            print(f"DAG import error in {path}: {error.strip().splitlines()[-1]}", file=sys.stderr)
        return 1
    log_path = os.path.join(env["MLOPS_HOME"], "demo.log")
    print(f"Airflow task logs: {log_path}", flush=True)
    results = []
    for step in plan():
        if step.dag_id not in bag.dags or (args.only and step.dag_id not in args.only):
            continue
        state, seconds = _run(bag.dags[step.dag_id], step, log_path)
        ok = (state == "success") == step.expect_success
        results.append((step, state, seconds, ok))
        print(f"{'ok ' if ok else 'BAD'} {step.dag_id:<28} {step.label:<40} {state:<8} {seconds:6.1f}s", flush=True)

    # The drift check triggered emergency retrains (TriggerDagRunOperator): queued runs that a scheduler would start.
    # dag.test() at the same logical date replaces each queued run by an executed one (same run id and conf).
    for logical_date, run_after, conf in _queued_retrains():
        step = Step("model_retrain", f"EMERGENCY retrain {','.join(conf.get('symbols') or [])} "
                    f"{','.join(conf.get('timeframes') or [])}", logical_date, conf)
        state, seconds = _run(bag.dags["model_retrain"], step, log_path, run_after=run_after)
        results.append((step, state, seconds, state == "success"))
        print(f"{'ok ' if state == 'success' else 'BAD'} {step.dag_id:<28} {step.label:<40} {state:<8} {seconds:6.1f}s", flush=True)
    _consume_asset_queue()

    from market_mlops.tasks.report import lifecycle_summary

    print()
    print(lifecycle_summary())
    replayed = _replay(market_mlops)
    results.append((Step("replay", "retrain policy vs a static model", dt.datetime.combine(REPLAY[1], dt.time(), dt.UTC)),
                    "success" if replayed else "failed", 0.0, replayed))
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f}s: {1 + sum(r[3] for r in results)}/{1 + len(results)} "
          "steps as expected")
    return 0 if all(r[3] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
