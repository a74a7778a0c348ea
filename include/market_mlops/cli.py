"""`market-mlops`: the suite's command line (also `python -m market_mlops.cli`).

  market-mlops import PATH... [--symbol S] [--timeframe TF] [--allow-restatement] [--accept-gaps]
                      [--drop-off-session] [--partial]
                                       load vendor history (CSV/Parquet files, folders, s3:// prefixes) through the
                                       ingestion gate into the versioned dataset
  market-mlops run DAG --date YYYY-MM-DD [--conf JSON]
                                       one run of a suite DAG on the embedded stack (no scheduler): the session of
                                       that date (ingestion, drift check), the interval ending it (retrain, refresh)
  market-mlops config check            validate config/pipeline.yaml plus MLOPS__* overrides
  market-mlops config show             print the resolved configuration
  market-mlops rollback --symbol SPY --timeframe d1 [--horizon H] [--to-version N] [--reason R [--force]]
                                       move `champion` back to the version it replaced (or to N)
  market-mlops models [--explain SYM]  champion and challenger of every registered model, each symbol's consensus and
                                       the latest alerts
  market-mlops retention [--apply] [--as-of YYYY-MM-DD]
                                       archive old model versions, forecasts and drift rows, collect unused data
                                       versions (a dry run unless --apply)
  market-mlops replay --from D --to D [--policy P]... [--symbol S] [--timeframe TF]
                                       replay retrain policies over history beside a static model
  market-mlops pools                   create or resize the suite's Airflow pools (dvc, training)
  market-mlops secrets check [--require VAR...]
                                       refuse empty, short or placeholder secrets (airflow-init and mlflow run it)
  market-mlops features|train|evaluate the retrain as file-to-file steps (the stages of dvc.yaml)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from market_mlops.config import ConfigError, load_config


def _config(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)
    if args.action == "show":
        print(json.dumps(cfg.model_dump(mode="json"), indent=2))
    else:
        series, models = len(cfg.pairs()), len(cfg.model_keys())
        print(f"config ok: {series} series ({len(cfg.universe.symbols)} symbols on {len(cfg.universe.timeframes)} "
              f"timeframe(s)), {models} models (a model per horizon), data in {cfg.data_root}, MLflow at "
              f"{cfg.mlflow_tracking_uri}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from market_mlops.tasks.promotion import rollback_model

    moved = rollback_model(args.symbol, args.timeframe, args.to_version, horizon=args.horizon, reason=args.reason,
                           force=args.force)
    print(f"{moved['model']}: champion moved from v{moved['from']} to v{moved['to']}")
    return 0


def _retention(args: argparse.Namespace) -> int:
    import datetime as dt

    from market_mlops.tasks.retention import describe, run_retention

    as_of = dt.datetime.combine(dt.date.fromisoformat(args.as_of), dt.time(), dt.UTC) if args.as_of else None
    print("\n".join(describe(run_retention(apply=args.apply, as_of=as_of))))
    return 0


def _models(args: argparse.Namespace) -> int:
    from market_mlops.tasks.report import alerts_section, explain_section, models_section

    if args.explain:
        lines = explain_section(args.explain.upper(), args.last)
        print("\n".join(lines), file=sys.stderr if lines[0].startswith("error:") else sys.stdout)
        return 1 if lines[0].startswith("error:") else 0

    print("\n".join([*models_section(), "", *alerts_section()]))
    return 0


def _import(args: argparse.Namespace) -> int:
    from market_mlops.dev.local_stack import configure_environment
    from market_mlops.tasks.importing import import_files

    configure_environment()  # the embedded stack's defaults for whatever the environment does not set
    result = import_files(args.paths, args.symbol, args.timeframe, allow_restatement=args.allow_restatement,
                          accept_gaps=args.accept_gaps, drop_off_session=args.drop_off_session or None,
                          partial=args.partial)
    print(result.table())
    if result.changed_data:  # as the ingestion DAG's outlet: the retrain scheduled on the dataset is queued
        from market_mlops.orchestration import announce_dataset_version

        said = announce_dataset_version(dict(result.version))
        if said:
            print(said)
    return 0


def _run(args: argparse.Namespace) -> int:
    import datetime as dt

    from market_mlops.dev.local_stack import run_dag_locally
    from market_mlops.tasks.report import alerts_since

    started = dt.datetime.now(dt.UTC).replace(microsecond=0)  # alerts are stamped to the second
    state, seconds, detail = run_dag_locally(args.dag_id, dt.date.fromisoformat(args.date), json.loads(args.conf))
    if state != "success":
        print("\n".join(alerts_since(started)))  # stdout: the error stays the last line of stderr
        print(f"error: {args.dag_id} {args.date}: {state} in {seconds:.0f}s: {detail}", file=sys.stderr)
        return 1
    print(f"{args.dag_id} {args.date}: {state} in {seconds:.0f}s (task logs in {detail})")
    from market_mlops.dev.local_stack import last_run_id, task_results
    from market_mlops.tasks.report import RUN_REPORTS, run_report

    run_id = last_run_id(args.dag_id)
    if run_id and args.dag_id in RUN_REPORTS:
        lines = run_report(args.dag_id, task_results(args.dag_id, run_id, RUN_REPORTS[args.dag_id][0]))
        print("\n".join(lines) if lines else "  nothing to do in this run (no model or champion in it)")
    print("\n".join(alerts_since(started)))  # what the run told people is part of what it decided
    return 0


def _secrets(args: argparse.Namespace) -> int:
    import os

    from market_mlops.secrets_check import check

    bad = check(os.environ, tuple(args.require))
    for line in bad:
        print(f"error: {line}", file=sys.stderr)
    if not bad:
        print("secrets ok")
    return 1 if bad else 0


def _pools(args: argparse.Namespace) -> int:
    from market_mlops.orchestration import ensure_pools

    print("pools: " + ", ".join(f"{name} ({slots} slots)" for name, slots in ensure_pools().items()))
    return 0


def _features(args: argparse.Namespace) -> int:
    from market_mlops.tasks.reproduce import build_feature_table

    rows = build_feature_table(args.symbol, args.timeframe, args.until, args.data_version, Path(args.out))
    print(f"{rows} labelled rows -> {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from market_mlops.tasks.reproduce import train_from_table

    checksums = train_from_table(Path(args.features), args.timeframe, Path(args.out))
    print(f"model -> {args.out} ({', '.join(f'{k} {v[:10]}' for k, v in checksums.items())})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from market_mlops.tasks.reproduce import evaluate_model

    m = evaluate_model(Path(args.features), Path(args.model), args.timeframe, Path(args.out))
    print(f"holdout log-loss {m['model_log_loss']:.4f} vs climatology {m['climatology_log_loss']:.4f}, persistence "
          f"{m['persistence_log_loss']:.4f}; accuracy {m['model_accuracy']:.3f} vs {m['climatology_accuracy']:.3f}, "
          f"{m['persistence_accuracy']:.3f} -> {args.out}")
    return 0


def _mlflow_auth(args: argparse.Namespace) -> int:
    """The MLflow service's auth config (from MLFLOW_AUTH_DATABASE_URI), or the pipeline's account (mlflow-init)."""
    import os

    from market_mlops.registry import accounts

    if args.action == "config":
        path = accounts.write_auth_config(Path(args.path), os.environ["MLFLOW_AUTH_DATABASE_URI"])
        print(f"MLflow auth config -> {path} (people: READ unless granted more)")
        return 0
    from market_mlops.config import get_config

    done = accounts.ensure_user(get_config().mlflow_tracking_uri, os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"],
                                os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"])
    print(f"MLflow user {os.environ['MLFLOW_TRACKING_USERNAME']} {done}")
    return 0


def _state(args: argparse.Namespace) -> int:
    from market_mlops.state import store

    store.engine()  # brings the schema to head (Alembic), once, before any worker starts
    print(f"state store {store.describe()} at schema head")
    return 0


def _replay(args: argparse.Namespace) -> int:
    import datetime as dt

    from market_mlops.analysis.replay import DEFAULT_POLICIES, replay, table

    report = replay(dt.date.fromisoformat(args.start), dt.date.fromisoformat(args.end), args.policy or DEFAULT_POLICIES,
                    args.data_version, args.symbol or None, args.timeframe or None)
    print(table(report))
    print(f"report and chart -> {report['artifacts']['folder']} (MLflow run {report['artifacts']['mlflow_run_id']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="market-mlops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cfg = sub.add_parser("config", help="check or show the configuration")
    cfg.add_argument("action", choices=["check", "show"])
    cfg.add_argument("--file", help="a YAML file instead of MLOPS_CONFIG / config/pipeline.yaml")
    cfg.set_defaults(func=_config)
    rb = sub.add_parser("rollback", help="move the champion alias back")
    rb.add_argument("--symbol", required=True)
    rb.add_argument("--timeframe", required=True)
    rb.add_argument("--horizon", type=int, help="the model's horizon in bars (default: the timeframe's main one)")
    rb.add_argument("--to-version", help="a version number (default: the version the champion replaced)")
    rb.add_argument("--reason", help="why, in your words: recorded in the audit trail and the alert")
    rb.add_argument("--force", action="store_true", help="move to a version that never passed the gate nor served "
                    "(needs --reason; the audit trail records the override)")
    rb.set_defaults(func=_rollback)
    p = sub.add_parser("models", help="list registered models and their aliases")
    p.add_argument("--explain", metavar="SYMBOL", help="why each of the symbol's champions made its recent calls: "
                   "the features that drove each call, signed (a baseline: its class mix)")
    p.add_argument("--last", type=int, default=5, help="with --explain: this many recent forecasts per model")
    p.set_defaults(func=_models)
    ret = sub.add_parser("retention", help="archive model versions, old forecasts and drift checks, and data versions "
                         "no kept model uses (a dry run unless --apply)")
    ret.add_argument("--apply", action="store_true", help="carry the plan out (default: print it, change nothing)")
    ret.add_argument("--as-of", help="YYYY-MM-DD: the day rows' ages are counted from (default: today)")
    ret.set_defaults(func=_retention)
    sub.add_parser("pools", help="create or resize the suite's Airflow pools").set_defaults(func=_pools)
    imp = sub.add_parser("import", help="load vendor history files into the versioned dataset (through the gate)")
    imp.add_argument("paths", nargs="+", help="CSV or Parquet files, folders, or s3://bucket/prefix")
    imp.add_argument("--symbol", help="the symbol of files with no symbol column and no SYMBOL or SYMBOL_TF name")
    imp.add_argument("--timeframe", help="the timeframe of files that neither name it nor have a column (default: "
                     "inferred from the bar spacing)")
    imp.add_argument("--allow-restatement", action="store_true", help="accept files that change stored bars "
                     "(counted in the version record, alerted); refused by default")
    imp.add_argument("--drop-off-session", action="store_true", help="drop bars outside their calendar's sessions "
                     "(a vendor's ticks after the Friday close) and list each one, instead of refusing the file")
    imp.add_argument("--partial", action="store_true", help="import the files that pass and leave out (quarantined, "
                     "listed) the ones that fail their own checks; default: one bad file refuses the whole import")
    imp.add_argument("--accept-gaps", action="store_true", help="a price jump between the stored bars and the "
                     "files' first bar is a warning, not a rejection")
    imp.set_defaults(func=_import)
    sec = sub.add_parser("secrets", help="refuse missing, short or placeholder secrets (compose services run it first)")
    sec.add_argument("action", choices=["check"])
    sec.add_argument("--require", nargs="*", default=[], help="variables that must be set (others are checked if set)")
    sec.set_defaults(func=_secrets)
    auth = sub.add_parser("mlflow-auth", help="MLflow basic-auth: write the server's config, or create the "
                          "pipeline's account (compose runs both)")
    auth.add_argument("action", choices=["config", "pipeline-user"])
    auth.add_argument("path", nargs="?", default="/tmp/mlflow-auth.ini", help="where `config` writes the ini")
    auth.set_defaults(func=_mlflow_auth)
    st = sub.add_parser("state", help="bring the suite's SQL store to the current schema (airflow-init runs it)")
    st.add_argument("action", choices=["upgrade"])
    st.set_defaults(func=_state)
    run = sub.add_parser("run", help="one run of a suite DAG on the embedded stack, dated like a backfill")
    run.add_argument("dag_id", help="market_data_ingestion, model_retrain, weekly_weight_refresh, drift_check, model_rollback, "
                     "model_retention")
    run.add_argument("--date", required=True, help="YYYY-MM-DD: a session date, or the day a monthly/weekly interval ends")
    run.add_argument("--conf", default="{}", help="the run's params as JSON, as in the trigger form")
    run.set_defaults(func=_run)
    rp = sub.add_parser("replay", help="replay retrain policies over history in process and compare them with a "
                                       "static model (report, chart, MLflow run)")
    rp.add_argument("--from", dest="start", required=True, help="YYYY-MM-DD: the first session replayed")
    rp.add_argument("--to", dest="end", required=True, help="YYYY-MM-DD: replay sessions before this date")
    rp.add_argument("--policy", action="append", help="a policy: monthly, weekly, emergency joined by '+' "
                    "(repeatable; default: monthly, monthly+weekly, monthly+weekly+emergency); static is always in")
    rp.add_argument("--data-version", default="latest", help="a DVC md5 or its prefix (default: the latest logged)")
    rp.add_argument("--symbol", action="append", help="narrow to these symbols (repeatable)")
    rp.add_argument("--timeframe", action="append", help="narrow to these timeframes (repeatable)")
    rp.set_defaults(func=_replay)
    feat = sub.add_parser("features", help="dvc stage: feature table of one model from a data version")
    for arg in ("--symbol", "--timeframe", "--until", "--out"):
        feat.add_argument(arg, required=True)
    feat.add_argument("--data-version", default="latest", help="a DVC md5 (default: latest logged by --until)")
    feat.set_defaults(func=_features)
    train = sub.add_parser("train", help="dvc stage: walk-forward training into a model folder")
    for arg in ("--features", "--timeframe", "--out"):
        train.add_argument(arg, required=True)
    train.set_defaults(func=_train)
    ev = sub.add_parser("evaluate", help="dvc stage: holdout metrics next to the baselines")
    for arg in ("--features", "--model", "--timeframe", "--out"):
        ev.add_argument(arg, required=True)
    ev.set_defaults(func=_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:  # BatchRejected, NothingToImport, a bad file: one line
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # RegistryError, VersioningError: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
