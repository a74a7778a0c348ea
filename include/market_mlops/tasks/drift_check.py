"""The weekday drift check of one champion: forecasts, realized accuracy band, feature and prediction drift, a report
in MLflow, a drift history, Slack alerts, and the decision to trigger an emergency retrain (with a cooldown).

The decisions are pure functions in `monitoring.bands`; this module gathers their inputs and applies them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from market_mlops.config import PipelineConfig, get_config
from market_mlops.contracts import Band, ChampionRef, ChampionShard, ConsensusResult, DriftResult, RetrainConf
from market_mlops.monitoring.detector import REFERENCE_ROWS
from market_mlops.registry import aliases, store, versions
from market_mlops.tasks.phases import PhaseClock

if TYPE_CHECKING:
    from collections.abc import Mapping
    from concurrent.futures import Future

    import pandas as pd

    from market_mlops.monitoring.drift import FeatureDrift
    from market_mlops.tasks.shards import ModelFailure

log = logging.getLogger(__name__)
REPORT_ONLY = ("features", "feature_drift_rule")  # in the MLflow report, not in the SQL record or the XCom


@dataclass
class AccuracyCheck:
    """The band of the champion's resolved forecasts (`monitoring.detector`) and the realized accuracy of the last of
    them against its reference accuracy, with its interval."""

    realized: float
    holdout: float
    delta_points: float
    resolved: int
    band: Band
    recent_predictions: pd.Series
    finance: dict[str, float]  # IC, rank IC, long/short after costs of the same resolved forecasts
    outcomes: float = 0.0  # resolved calls since it began serving / calls per outcome
    upper_delta_points: float = float("nan")  # the drop the evidence is sure of, at drift.band_confidence
    band_reason: str = ""
    outcomes_needed: float | None = None  # set while too few outcomes resolved to judge a band


def live_finance_metrics(resolved: pd.DataFrame, bars: pd.DataFrame, horizon: int, bars_per_year: int) -> dict[str, float]:
    """The holdout's finance metrics on resolved live forecasts: the score P(bull) - P(bear) against the forward
    return over `horizon` bars, and a long/short book on the calls held one bar (pure: frames in, numbers out)."""
    import numpy as np

    from market_mlops.model.evaluation import finance_metrics

    ordered = bars.sort_values("ts")
    close = ordered["close"].to_numpy(dtype=float)
    stamps = ordered["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64)  # UTC instants, whatever the unit
    wanted = resolved["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    at = np.searchsorted(stamps, wanted)
    found = (at < len(stamps)) & (stamps[np.minimum(at, len(stamps) - 1)] == wanted) if len(stamps) else at < 0
    forward, next_bar = np.full(len(wanted), np.nan), np.full(len(wanted), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ahead = np.concatenate([close[horizon:] / close[:-horizon] - 1, np.full(horizon, np.nan)])[:len(close)]
        one = np.concatenate([close[1:] / close[:-1] - 1, [np.nan]])[:len(close)]
    forward[found], next_bar[found] = ahead[at[found]], one[at[found]]
    usable = np.isfinite(forward) & np.isfinite(next_bar)
    proba = resolved[["p_bearish", "p_neutral", "p_bullish"]].to_numpy(dtype=float)[usable]
    return finance_metrics(proba, forward[usable], next_bar[usable], bars_per_year)


def measure_accuracy(model: versions.LoadedModel, symbol: str, timeframe: str, holdout_accuracy: float,
                     interval_end: dt.datetime, cfg: PipelineConfig, bars: pd.DataFrame | None = None,
                     reference_rows: float | None = None, stored: pd.DataFrame | None = None) -> AccuracyCheck:
    """The band of the version's resolved forecasts (`monitoring.detector`: a CUSUM per band over every call since
    it began serving, against its reference measured on `reference_rows` rows) and its realized accuracy over the
    last `drift.accuracy_outcomes` x horizon of them with its interval; `bars`: the series' bars up to
    `interval_end` when the caller has them (read here when they do not reach back far enough); `stored`: the
    model's stored forecasts (every version) when the caller read them."""
    import pandas as pd

    from market_mlops.data.dataset import load_bars
    from market_mlops.data.versioning import head_dataset
    from market_mlops.monitoring.bands import accuracy_upper_bound
    from market_mlops.monitoring.detector import SESSIONS_PER_YEAR, detect
    from market_mlops.monitoring.forecasts import load_forecasts, model_labels, resolved_forecasts

    spec = cfg.spec(timeframe)
    horizon, labels = model_labels(model.base.meta, cfg, timeframe)
    if stored is None:
        stored = load_forecasts(symbol, timeframe, cfg, model_name=model.name)
    mine = stored[(stored["model_version"] == str(model.version)) & (stored["ts"] < pd.Timestamp(interval_end))]
    # Resolving a forecast reads the bars from its own onward, and its label band the warm-up before: the partitions
    # before that are not read.
    since = (mine["ts"].min().to_pydatetime() if len(mine) else interval_end) - dt.timedelta(days=spec.warmup_days)
    if bars is None or bars.empty or bars["ts"].iloc[0] > pd.Timestamp(since):
        bars = load_bars(head_dataset(cfg), timeframe, [symbol], until=interval_end, since=since)
    every = resolved_forecasts(mine, bars, horizon, labels)
    resolved = every.tail(cfg.drift.accuracy_outcomes * horizon)
    realized = float(resolved["correct"].mean()) if len(resolved) else float("nan")
    delta = (realized - holdout_accuracy) * 100 if len(resolved) else float("nan")
    recent = mine.sort_values("ts").tail(cfg.drift.accuracy_outcomes * horizon)["predicted"]
    rows = reference_rows if reference_rows and np.isfinite(reference_rows) else cfg.drift.accuracy_outcomes * horizon
    detection = detect(every["correct"].to_numpy(dtype=bool), holdout_accuracy, rows, horizon,
                       max(1.0, spec.bars_per_year / SESSIONS_PER_YEAR), cfg.drift)
    outcomes = len(resolved) / detection.per_outcome
    upper = accuracy_upper_bound(realized, outcomes, cfg.drift.band_confidence) if len(resolved) else float("nan")
    reason = detection.describe()
    if len(resolved):
        reason += (f"; realized {realized:.3f} over the last {len(resolved)} resolved forecasts, at "
                   f"{cfg.drift.band_confidence:.0%} confidence at most {upper:.3f}")
    if model.is_baseline and len(every):
        reason += f"; {class_mix_moved(every, model.base.meta)}"
    return AccuracyCheck(realized, holdout_accuracy, delta, len(resolved), detection.band or "normal", recent,
                         live_finance_metrics(resolved, bars, horizon, spec.bars_per_year), detection.outcomes,
                         (upper - holdout_accuracy) * 100 if len(resolved) else float("nan"), reason,
                         detection.needed if detection.band is None else None)


def class_mix_moved(resolved: pd.DataFrame, meta: dict[str, Any]) -> str:
    """What a baseline's accuracy follows: the live class mix of its resolved forecasts against the shares it
    learned (a climatology baseline is right as often as its class occurs)."""
    from market_mlops.model.ensemble_model import baseline_tables
    from market_mlops.model.labels import CLASSES

    live = resolved["realized"].value_counts(normalize=True)
    learned = baseline_tables(meta).climatology
    return "class mix live " + ", ".join(
        f"{c.lower()} {float(live.get(c, 0.0)):.0%} (learned {float(learned[i]):.0%})" for i, c in enumerate(CLASSES))


def drift_lookback(cfg: PipelineConfig, timeframe: str) -> dt.timedelta:
    """Calendar days of bars that hold the last `drift.window` bars of a timeframe (half again for holidays)."""
    return dt.timedelta(days=max(120, math.ceil(cfg.drift.window * 365 / cfg.spec(timeframe).bars_per_year * 1.5)))


def measure_feature_drift(model: versions.LoadedModel, symbol: str, timeframe: str, interval_end: dt.datetime,
                          cfg: PipelineConfig, reference_run_id: str | None = None,
                          feats: pd.DataFrame | None = None) -> tuple[list[FeatureDrift], str]:
    """PSI and KS of each feature over the last `drift.window` bars against the training reference of the model,
    and the status ("measured", or why not). `feats`: the series' features up to `interval_end`, reaching back
    `drift_lookback` at least, when the caller has them."""
    import mlflow
    import pandas as pd

    from market_mlops.monitoring.drift import (
        NULL_THRESHOLDS_FILE,
        enough_for_feature_drift,
        feature_drift,
        usable_null_thresholds,
    )
    from market_mlops.monitoring.forecasts import feature_window

    reference_run = reference_run_id or model.run_id  # a baseline version reads its trained model's reference
    reference = pd.read_parquet(versions.run_file(reference_run, "reference/reference_features.parquet", cfg))
    if feats is None:
        _own, feats = feature_window(cfg, symbol, timeframe, interval_end - drift_lookback(cfg, timeframe), interval_end)
    current = feats[model.features].dropna().tail(cfg.drift.window)
    too_few = enough_for_feature_drift(current, cfg.drift)
    if too_few:
        return [], too_few
    try:
        stored = json.loads(versions.run_file(reference_run, f"reference/{NULL_THRESHOLDS_FILE}", cfg).read_text())
    except (OSError, mlflow.exceptions.MlflowException):  # a model trained before limits were stored
        stored = None
    return feature_drift(reference, current, cfg.drift, usable_null_thresholds(stored, len(current), cfg.drift)), "measured"


def attribution_drift(model: versions.LoadedModel, feats: pd.DataFrame, scored: pd.DataFrame,
                      cfg: PipelineConfig) -> list[list[Any]] | None:
    """The features whose share of the version's attributions moved most: the mean absolute contribution to the
    called class over its last `drift.window` forecasts against its holdout's (`model.explain.attribution_shift`);
    None for a baseline, a version trained before attributions were logged, or no forecast yet."""
    import mlflow
    import pandas as pd

    from market_mlops.model.explain import (
        ATTRIBUTIONS_FILE,
        attribution_shift,
        ensemble_contributions,
        mean_abs_contributions,
    )
    from market_mlops.model.labels import CLASSES

    if model.is_baseline or scored.empty:
        return None
    try:
        reference = json.loads(versions.run_file(model.run_id, f"explain/{ATTRIBUTIONS_FILE}", cfg).read_text())
    except (OSError, mlflow.exceptions.MlflowException):
        return None
    recent = scored.tail(cfg.drift.window)
    rows = feats.set_index(pd.to_datetime(feats["ts"], utc=True)).loc[pd.to_datetime(recent["ts"], utc=True)]
    contributions = ensemble_contributions(model.base, rows[model.features].to_numpy(dtype=np.float32))
    called = recent["predicted"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy(dtype=int)
    live = mean_abs_contributions(contributions, called, model.features)
    return [list(move) for move in attribution_shift(live, reference["mean_abs"])]


def prediction_drift(model: versions.LoadedModel, recent_predictions: pd.Series,
                     cfg: PipelineConfig | None = None) -> float:
    """PSI of the predicted classes of recent forecasts against the class mix predicted on the holdout."""
    from market_mlops.monitoring.drift import psi_from_shares
    from market_mlops.monitoring.forecasts import class_shares

    if not len(recent_predictions):
        return float("nan")
    holdout_metrics = json.loads(versions.run_file(model.run_id, "evaluation/holdout_metrics.json", cfg).read_text())
    reference_shares = np.asarray(holdout_metrics["model_confusion"]).sum(axis=0)
    return psi_from_shares(reference_shares, class_shares(recent_predictions))


@dataclass
class LiveChecks:
    """A champion's live records at a check: its shadow challenger's against it (`monitoring.shadow.ShadowRecord`)
    and, for a champion model, the baselines' against it; and what they decide (promote the challenger, demote the
    champion to a baseline, or nothing)."""

    shadow: Any = None  # ShadowRecord | None
    champion: Any = None  # ChampionRecord | None
    shadow_forecasts: int = 0
    shadow_versions: list[str] | None = None  # the challengers whose sessions the shadow record holds

    @property
    def action(self) -> tuple[str, str, str] | None:
        """(promote | demote, the challenger's version or the baseline's rule, why), or None."""
        if self.shadow is not None and self.shadow.decision == "promote":
            return "promote", self.shadow.challenger, self.shadow.reason
        if self.champion is not None and self.champion.demote_to:
            return "demote", self.champion.demote_to, self.champion.reason
        return None

    def report(self) -> dict[str, Any]:
        action = self.action
        shadow = None if self.shadow is None else {**self.shadow.record(), "versions": self.shadow_versions or []}
        return {"shadow": shadow,
                "live": self.champion.record() if self.champion is not None else None,
                "shadow_forecasts": self.shadow_forecasts,
                "live_action": {"action": action[0], "target": action[1], "reason": action[2]} if action else None}


def shadow_challenger(name: str, champion_version: str, cfg: PipelineConfig) -> versions.LoadedModel | None:
    """The version the `challenger` alias names when it is another trained model (a challenger that did not pass, or
    a demoted champion): it forecasts in shadow. None: no such version, or it cannot be loaded (said in the log)."""
    challenger = aliases.alias_version(name, aliases.CHALLENGER, cfg)
    if challenger is None or challenger == str(champion_version):
        return None
    try:
        loaded = versions.load_verified(name, challenger, cfg=cfg)
    except Exception as error:  # noqa: BLE001 - an archived or broken challenger is no reason to fail the check
        log.warning("%s: challenger v%s is not forecast in shadow (%s: %s)", name, challenger, type(error).__name__,
                    str(error)[:200])
        return None
    return None if loaded.is_baseline else loaded


def score_shadow(model: versions.LoadedModel, symbol: str, timeframe: str, interval_end: dt.datetime,
                 cfg: PipelineConfig, computed: tuple[pd.DataFrame, pd.DataFrame]) -> tuple[versions.LoadedModel | None, int]:
    """Forecast in shadow with the champion's challenger (if any) from its own cutoff: (the challenger, forecasts
    scored)."""
    from market_mlops.monitoring.forecasts import SHADOW_ROLE, score_and_store

    challenger = shadow_challenger(model.name, model.version, cfg)
    if challenger is None:
        return None, 0
    cutoff = dt.datetime.fromisoformat((challenger.run.data.tags if challenger.run else {}).get(
        "data.interval_end", interval_end.isoformat()))
    return challenger, len(score_and_store(challenger, symbol, timeframe, cutoff, interval_end, cfg,
                                           meta=challenger.base.meta, computed=computed, role=SHADOW_ROLE))


def measure_live(model: versions.LoadedModel, challenger: versions.LoadedModel | None, timeframe: str,
                 own: pd.DataFrame, stored: pd.DataFrame, cfg: PipelineConfig) -> LiveChecks:
    """The live records (`monitoring.shadow`) on the resolved sessions of the model's `stored` forecasts (before the
    check): challenger against champion and baselines, and baselines against a champion model."""
    import pandas as pd

    from market_mlops.model.baselines import BASELINES
    from market_mlops.model.ensemble_model import baseline_tables
    from market_mlops.model.labels import direction_labels
    from market_mlops.monitoring.forecasts import SHADOW_ROLE, model_labels, resolved_forecasts
    from market_mlops.monitoring.shadow import champion_record, shadow_record
    from market_mlops.registry.gate import level_of

    horizon, labels = model_labels(model.base.meta, cfg, timeframe)
    training = cfg.training
    alpha = level_of("shadow", training.yearly_false_promotions)
    challenger = shadow_challenger(model.name, model.version, cfg)
    live = LiveChecks()
    code = {c: i for i, c in enumerate(("BEARISH", "NEUTRAL", "BULLISH"))}
    known = direction_labels(own["close"].reset_index(drop=True), horizon, labels).shift(horizon)
    last_known = pd.Series(known.to_numpy(), index=pd.to_datetime(own["ts"], utc=True).to_numpy())

    def resolved(version: str) -> pd.DataFrame:
        mine = stored[stored["model_version"] == str(version)]
        out = resolved_forecasts(mine, own, horizon, labels)
        return out.assign(y=out["realized"].map(code).astype(int)) if len(out) else out

    def probabilities(frame: pd.DataFrame) -> np.ndarray:
        return frame[["p_bearish", "p_neutral", "p_bullish"]].to_numpy(dtype=float)

    def baselines(frame: pd.DataFrame, meta: dict[str, Any]) -> dict[str, np.ndarray]:
        known_then = last_known.reindex(pd.to_datetime(frame["ts"], utc=True).to_numpy()).to_numpy(dtype=float)
        return {b: baseline_tables(meta).probabilities(b, known_then, len(frame)) for b in BASELINES}

    mine = resolved(model.version)
    if not model.is_baseline and len(mine):
        live.champion = champion_record(mine["y"].to_numpy(), probabilities(mine), baselines(mine, model.base.meta),
                                        horizon, alpha, training.min_compare_outcomes, model.version,
                                        training.gate_metric)
    if challenger is not None:
        # The shadow record of this champion's whole reign: at each session, the newest challenger that forecast it
        # (a monthly retrain replaces the challenger; on daily bars one alone rarely holds 30 outcomes). Which one
        # that is was settled before the session's outcome, so the e-process stays valid; the one promoted is the
        # challenger of now.
        shadows = [resolved(v) for v in stored.loc[(stored["role"] == SHADOW_ROLE)
                                                   & (stored["model_version"] != str(model.version)),
                                                   "model_version"].unique()]
        theirs = pd.concat([f for f in shadows if len(f)], ignore_index=True) if any(len(f) for f in shadows) \
            else resolved(challenger.version)
        theirs = theirs.assign(order=theirs["model_version"].astype(int)).sort_values(["ts", "order"]) \
            .drop_duplicates("ts", keep="last").drop(columns="order")
        paired = mine.merge(theirs, on="ts", suffixes=("_champion", "")).sort_values("ts")
        champion_p = paired[["p_bearish_champion", "p_neutral_champion", "p_bullish_champion"]].to_numpy(dtype=float)
        live.shadow = shadow_record(paired["y"].to_numpy(dtype=int), champion_p, probabilities(paired),
                                    baselines(paired, model.base.meta), horizon, alpha,
                                    training.min_compare_outcomes, (challenger.version, model.version),
                                    model.is_baseline, training.gate_metric,
                                    segments=paired["model_version"].astype(int).to_numpy())
        live.shadow_versions = sorted(set(paired["model_version"].astype(str)), key=int)
    return live


class StaleData(RuntimeError):
    """The newest data cannot answer for this session: no band is measured on it."""

    retryable = False  # a retry cannot fix it: the task fails at once (orchestration.fail_now_when_permanent)
    hint = ('ingest the missing sessions (market_data_ingestion, or a backfill of it), then clear this task;'
            ' no band was written on old data')


def require_fresh_data(interval_end: dt.datetime, cfg: PipelineConfig | None = None, what: str = "drift check",
                       withheld: str = "no band was measured") -> None:
    """Refuse to check drift (or refresh weights: `what`, `withheld`) on data that ends before the session this run
    is for (less `training.max_data_lag_days`, as the retrain refuses to train on it): a check on old bars would
    score old forecasts and rewrite the bands as if nothing happened, a refresh would find no new rows and read as a
    success. Sends one critical alert and raises `StaleData`."""
    from market_mlops.data.versioning import choose_training_version, ends_before, version_history
    from market_mlops.monitoring.alerts import Alert, send_alert
    from market_mlops.tasks.retrain import freshness_floor, last_session_close

    cfg = cfg or get_config()
    due = last_session_close(interval_end, cfg)
    floor = freshness_floor(due, cfg)
    record = choose_training_version(version_history(cfg), interval_end, None, due, floor)
    if record is not None and not ends_before(record, floor):
        return
    newest = f"ends {record['interval_end'][:16]}" if record else "does not exist"
    message = (f"stale data: the newest data version {newest}, but the session this {what} is for closed "
               f"{due:%Y-%m-%d %H:%M} UTC (allowed lag {cfg.training.max_data_lag_days} days): {withheld}; "
               f"run or backfill market_data_ingestion up to {due:%Y-%m-%d}, then clear this task")
    send_alert(Alert(title=f"Stale data: {what} refused", severity="critical", kind="staleness",
                     facts={"session_close": f"{due:%Y-%m-%d %H:%M}", "newest_data": newest}, lines=[message]))
    raise StaleData(message)


@dataclass
class CheckedChampion:
    """One champion measured, before its report is logged, its check recorded and its alerts sent (done for the
    whole shard at once: `publish_checks`)."""

    report: dict[str, Any]  # the record, and the report's per-feature rows (`REPORT_ONLY`)
    drifted: list[FeatureDrift]
    emergency_reason: str
    scored: pd.DataFrame
    seconds: dict[str, float]


def check_shard(shard: ChampionShard, interval_start: dt.datetime, interval_end: dt.datetime,
                airflow_ctx: dict[str, str] | None = None, cfg: PipelineConfig | None = None) -> list[DriftResult]:
    """Check each champion of a shard (the version its listing named), with the cooldowns that listing read for the
    whole fleet. The registry reads and downloads of every champion go side by side first, then each is measured,
    then the shard's reports are logged side by side and its checks recorded in one statement, then alerts.
    A champion an earlier try of this same Airflow run already checked is not checked (and alerted) again: its
    stored result stands. Raises `ShardFailed` naming the failures, after the others are done."""
    from concurrent.futures import ThreadPoolExecutor

    from market_mlops.monitoring.drift import NULL_THRESHOLDS_FILE
    from market_mlops.tasks.shards import ShardFailed, work_through
    from market_mlops.tasks.universe import model_label

    cfg = cfg or get_config()
    airflow_ctx = airflow_ctx or {}
    earlier = _earlier_checks(shard, interval_end, cfg)
    run_id = airflow_ctx.get("run_id", "")
    done: dict[tuple[str, str], Any] = {key: xcom_safe({k: v for k, v in r.items() if k not in ("top_features", "airflow_run_id")})
            for key, r in earlier.items() if run_id and r.get("airflow_run_id") == run_id}
    results: dict[int, DriftResult] = {}
    todo: list[tuple[int, ChampionRef]] = []
    for i, champion in enumerate(shard["champions"]):
        key = _key(champion, cfg)
        if key in done:
            log.info("%s v%s was checked by an earlier try of this run: its result stands", *key)
            results[i] = done[key]
        else:
            todo.append((i, champion))
    shared = PhaseClock()
    wanted = [_key(c, cfg) for _, c in todo]
    reads = versions.prefetch_versions(wanted, (*REFERENCE_FILES, f"reference/{NULL_THRESHOLDS_FILE}"), cfg)
    shared.mark("prefetch")
    prefetched = len(todo)
    todo = [item for item, key in zip(todo, wanted, strict=True) if still_champion(key, reads[key])]
    recorded = {model: r["mlflow_run_id"] for (model, _v), r in earlier.items() if r.get("mlflow_run_id")}
    windows: dict[tuple[str, str, str], tuple[pd.DataFrame, pd.DataFrame]] = {}

    def check(item: tuple[int, ChampionRef]) -> tuple[int, CheckedChampion]:
        i, champion = item
        triggers = champion.get("emergency_triggers")
        return i, measure_champion(
            champion, reads[_key(champion, cfg)], interval_start, interval_end, cfg,
            None if triggers is None else [dt.datetime.fromisoformat(t) for t in triggers], windows)

    # Each champion's report run is found (its check's SQL record, else its name) or made while the champions are
    # measured: those round trips wait on the tracking server, the measuring on this worker's CPU.
    published: dict[str, DriftResult] = {}
    with ThreadPoolExecutor(max_workers=report_threads(cfg, len(todo))) as side:
        runs = {key[0]: side.submit(_report_run, cfg, *key, interval_end, recorded.get(key[0]))
                for key in (_key(c, cfg) for _, c in todo) if not isinstance(reads[key], Exception)}
        try:
            checked, failures = work_through(todo, lambda item: model_label(item[1], cfg), check)
            shared.mark("checks")  # each check records its own phases
            published, unpublished = publish_checks([c for _, c in checked], airflow_ctx, cfg, shared, runs,
                                                    prefetched)
        finally:  # whatever stopped a check (its error, the SQL store down, the task killed): no run left RUNNING
            _end_unpublished(runs, published, cfg)
    results.update({i: published[c.report["model"]] for i, c in checked if c.report["model"] in published})
    failures += unpublished
    if failures:
        raise ShardFailed(failures, len(results))
    return [results[i] for i in sorted(results)]


def _end_unpublished(runs: dict[str, Future[tuple[str, bool]]], published: dict[str, DriftResult],
                     cfg: PipelineConfig) -> None:
    """End FAILED the report runs left RUNNING (made or found so) of champions whose check was not published; the
    retry finds each by its name and logs into it."""
    client = store.client(cfg)
    for model, run in runs.items():
        if model not in published:
            with contextlib.suppress(Exception):  # ending is best effort: the run's name finds it again either way
                run_id, unfinished = run.result()
                if unfinished:
                    client.set_terminated(run_id, "FAILED")


def _key(champion: ChampionRef, cfg: PipelineConfig) -> tuple[str, str]:
    """(model, version) of a listed champion: how its earlier check, its registry reads and its report run are found."""
    return store.model_name(champion["symbol"], champion["timeframe"], champion.get("horizon"), cfg), str(champion["version"])


def still_champion(key: tuple[str, str], reads: versions.VersionReads | Exception) -> bool:
    """False when the version the listing named holds the champion alias no more (a task cleared after a promotion):
    a demoted version is not measured, alerted on or retrained for; the next check measures the new champion."""
    if isinstance(reads, Exception) or aliases.CHAMPION in (reads.version.aliases or []):
        return True
    log.info("%s v%s is no longer the champion (its aliases: %s): not checked; the next drift check measures the "
             "version that holds the alias now", *key, ", ".join(reads.version.aliases or []) or "none")
    return False


def check_model_drift(symbol: str, timeframe: str, interval_start: dt.datetime, interval_end: dt.datetime,
                      airflow_ctx: dict[str, str] | None = None, cfg: PipelineConfig | None = None,
                      horizon: int | None = None) -> DriftResult:
    """`check_shard` of one model's current champion (`horizon`: which of the timeframe's models, default its main
    horizon's)."""
    from market_mlops.tasks.universe import model_label

    cfg = cfg or get_config()
    name = store.model_name(symbol, timeframe, horizon, cfg)
    version = str(store.client(cfg).get_model_version_by_alias(name, aliases.CHAMPION).version)
    champion: ChampionRef = {"symbol": symbol, "timeframe": timeframe, "horizon": horizon, "version": version}  # type: ignore[typeddict-item]
    results = check_shard({"label": model_label(champion, cfg), "champions": [champion]}, interval_start,
                          interval_end, airflow_ctx, cfg)
    if not results:
        raise store.RegistryError(f"{name} v{version} lost the champion alias while it was being checked: run the "
                                  "check again to measure the version that holds it now")
    return results[0]


REFERENCE_FILES = ("reference/reference_features.parquet", "evaluation/holdout_metrics.json")


def _earlier_checks(shard: ChampionShard, interval_end: dt.datetime,
                    cfg: PipelineConfig) -> dict[tuple[str, str], dict[str, Any]]:
    """{(model, version): record} of the shard's champions already checked for this interval, by any Airflow run
    (one query for the shard): a retry keeps those of its own run, a rerun logs into their report runs."""
    from sqlalchemy import select

    from market_mlops.state import store as state
    from market_mlops.state import tables

    names = [store.model_name(c["symbol"], c["timeframe"], c.get("horizon"), cfg) for c in shard["champions"]]
    checks = tables.drift_checks
    rows = state.frame(select(checks.c.model, checks.c.model_version, checks.c.record).where(
        checks.c.interval_end == interval_end.isoformat(), checks.c.model.in_(names)), cfg, what=" of drift_checks")
    return {(row["model"], row["model_version"]):
            json.loads(row["record"]) if isinstance(row["record"], str) else dict(row["record"]) for row in rows}


def measure_champion(champion: ChampionRef, reads: versions.VersionReads | Exception, interval_start: dt.datetime,
                     interval_end: dt.datetime, cfg: PipelineConfig, earlier_triggers: list[dt.datetime] | None,
                     windows: dict[tuple[str, str, str], tuple[pd.DataFrame, pd.DataFrame]]) -> CheckedChampion:
    """Forecast and measure one champion (`reads`: its registry reads from the shard's prefetch, or why they failed).
    `earlier_triggers`: its emergency retrains within the cooldown, when the listing read them for the fleet (else
    read here). `windows`: a shard's bars and features by (symbol, timeframe, since): a series' horizons share them."""
    import pandas as pd

    from market_mlops.monitoring.bands import decide_emergency
    from market_mlops.monitoring.drivers import forecast_drivers, store_new_drivers
    from market_mlops.monitoring.forecasts import feature_window, load_forecasts, score_and_store
    from market_mlops.monitoring.history import emergency_triggers
    from market_mlops.registry.gate import tag_number

    if isinstance(reads, Exception):
        raise reads
    symbol, timeframe = champion["symbol"], champion["timeframe"]
    clock = PhaseClock()  # recorded with the check
    name = store.model_name(symbol, timeframe, champion.get("horizon"), cfg)
    model = versions.load_verified(name, cfg=cfg, reads=reads)
    horizon = int(model.base.meta.get("horizon") or cfg.spec(timeframe, champion.get("horizon")).horizon)
    run = reads.run
    cutoff = dt.datetime.fromisoformat(run.data.tags["data.interval_end"])
    clock.mark("load")

    # One window of bars and features serves scoring (from the cutoff), resolution and feature drift (the last
    # `drift.window` bars), for each horizon of the series in this shard.
    since = min(cutoff, interval_end - drift_lookback(cfg, timeframe))
    key = (symbol, timeframe, since.isoformat())
    if key not in windows:
        windows.clear()  # one series at a time: a shard lists a series' horizons side by side
        windows[key] = feature_window(cfg, symbol, timeframe, since, interval_end)
    own, feats = windows[key]
    clock.mark("window")
    # Forecasts for every bar after the training cutoff up to this interval (upsert: reruns change nothing).
    scored = score_and_store(model, symbol, timeframe, cutoff, interval_end, cfg, meta=model.base.meta,
                             computed=(own, feats))
    clock.mark("score")
    # Why each forecast was made (a baseline's follow its class mix: none), once per forecast; the newest's in the report.
    explained = 0 if model.is_baseline else store_new_drivers(model.base, model.features, feats, scored, cfg)
    newest = [] if model.is_baseline or scored.empty else forecast_drivers(model.base, model.features, feats,
                                                                            scored.tail(1))
    clock.mark("explain")
    challenger, shadow_forecasts = score_shadow(model, symbol, timeframe, interval_end, cfg, (own, feats))
    # The model's stored forecasts (champion and shadow, every version), read once for the records and the bands.
    stored = load_forecasts(symbol, timeframe, cfg, model_name=name)
    stored = stored[stored["ts"] < pd.Timestamp(interval_end)]
    live = measure_live(model, challenger, timeframe, own, stored, cfg)
    live.shadow_forecasts = shadow_forecasts
    clock.mark("live")
    reference = run.data.metrics.get("drift.reference_accuracy", run.data.metrics["holdout.model_accuracy"])
    reference_rows = run.data.metrics.get(REFERENCE_ROWS, run.data.metrics.get("holdout.rows"))
    accuracy = measure_accuracy(model, symbol, timeframe, float(reference), interval_end, cfg, bars=own,
                                reference_rows=reference_rows, stored=stored)
    drifts, feature_status = measure_feature_drift(model, symbol, timeframe, interval_end, cfg,
                                                   run.data.tags.get("reference.run_id"), feats=feats)
    prediction_psi = prediction_drift(model, accuracy.recent_predictions, cfg)
    attributions = attribution_drift(model, feats, scored, cfg)
    triggers = emergency_triggers(name, cfg) if earlier_triggers is None else earlier_triggers
    emergency = decide_emergency(accuracy.band, interval_end, triggers, cfg.drift.cooldown_days)
    clock.mark("measure")

    drifted = [d for d in drifts if d.drifted]
    report: dict[str, Any] = {
        "model": name, "version": model.version, "symbol": symbol, "timeframe": timeframe, "horizon": horizon,
        "interval_start": interval_start.isoformat(), "interval_end": interval_end.isoformat(),
        "band": accuracy.band, "realized_accuracy": _rounded(accuracy.realized, 4),
        "holdout_accuracy": round(accuracy.holdout, 4), "delta_points": _rounded(accuracy.delta_points, 2),
        "resolved": accuracy.resolved, "outcomes": round(accuracy.outcomes, 1),
        "upper_delta_points": _rounded(accuracy.upper_delta_points, 2), "band_reason": accuracy.band_reason,
        "outcomes_needed": None if accuracy.outcomes_needed is None else round(accuracy.outcomes_needed, 1),
        "serving": "baseline" if model.is_baseline else "model", "forecasts_scored": int(len(scored)),
        "forecasts_explained": explained,
        "latest_drivers": newest[0]["record"]["top"] if newest else None,
        "attribution_shift": attributions,
        "holdout_skill": None if model.is_baseline else tag_number(model.tags, "gate.skill_mean"),
        "champion_age_days": round((interval_end - cutoff).total_seconds() / 86400, 1),
        "finance": {k: _rounded(v, 4) for k, v in accuracy.finance.items()},
        "features_drifted": len(drifted), "features_checked": len(drifts), "feature_drift": feature_status,
        "max_psi": max((d.psi for d in drifts if np.isfinite(d.psi)), default=0.0),
        "prediction_psi": _rounded(prediction_psi, 4),
        "emergency_retrain_triggered": emergency.retrain, "in_cooldown": emergency.in_cooldown,
        "emergency_reason": emergency.reason, "feature_drift_rule": _feature_rule(cfg),
        "features": [asdict(d) for d in drifts], **live.report(),
    }
    return CheckedChampion(report, drifted, emergency.reason, scored, clock.seconds())


def publish_checks(checked: list[CheckedChampion], airflow_ctx: dict[str, str], cfg: PipelineConfig,
                   shared: PhaseClock, runs: Mapping[str, Future[tuple[str, bool]]] | None = None,
                   prefetched: int | None = None) -> tuple[dict[str, DriftResult], list[ModelFailure]]:
    """The shard's reports in MLflow (side by side: each is a few round trips), its checks in the SQL store (one
    statement), then each champion's log line and alerts; returns {model: result} of those published and the
    failures of those whose report could not be logged (recorded nowhere: the task's retry checks them again).
    `shared`: the shard's clock since its start, whose phases are split evenly among its champions in the `seconds`
    each check records (the prefetch among the `prefetched` it read for). `runs`: {model: its report run (`_report_run`)
    as it is being found or made}; a model without one gets a new run."""
    from concurrent.futures import ThreadPoolExecutor

    from market_mlops.monitoring.history import recent_histories, record_drift_checks
    from market_mlops.tasks.shards import ModelFailure

    if not checked:
        return {}, []
    histories = recent_histories([c.report["model"] for c in checked], cfg)
    def log_report(c: CheckedChampion) -> str:
        run = (runs or {}).get(c.report["model"])
        return _log_report(cfg, c.report, histories[c.report["model"]], run.result()[0] if run else None)

    with ThreadPoolExecutor(max_workers=report_threads(cfg, len(checked))) as pool:
        logging_jobs = [pool.submit(log_report, c) for c in checked]
    shared.mark("report")
    seconds = shared.seconds()
    share = {"prefetch": round(seconds["prefetch"] / (prefetched or len(checked)), 3),
             "report": round(seconds["report"] / len(checked), 3)}
    logged, failures = [], []
    for c, job in zip(checked, logging_jobs, strict=True):
        error = job.exception()
        if error is not None:
            log.error("drift %s v%s: its report could not be logged (%s: %s); its check is not recorded",
                      c.report["model"], c.report["version"], type(error).__name__, str(error)[:300])
            failures.append(ModelFailure(f"{c.report['model']} v{c.report['version']}",
                                         error if isinstance(error, Exception) else RuntimeError(str(error))))
            continue
        c.report["mlflow_run_id"] = job.result()
        c.report["seconds"] = {"prefetch": share["prefetch"], **c.seconds, "report": share["report"]}
        logged.append(c)
    record_drift_checks([{k: v for k, v in c.report.items() if k not in REPORT_ONLY} |
                         {"top_features": [d.feature for d in c.drifted[:5]],
                          "airflow_run_id": airflow_ctx.get("run_id", "")} for c in logged], cfg)
    results: dict[str, DriftResult] = {}
    for c in logged:
        r = c.report
        log.info("drift %s v%s: band %s, realized %s vs reference %.3f (%s pts, %d resolved), %d/%d features "
                 "drifted, prediction PSI %s; seconds %s", r["model"], r["version"], r["band"], r["realized_accuracy"],
                 r["holdout_accuracy"], r["delta_points"], r["resolved"], r["features_drifted"], r["features_checked"],
                 r["prediction_psi"], r["seconds"])
        _alert_if_needed(r, c.drifted, r["features_checked"], c.emergency_reason, airflow_ctx, cfg)
        _alert_staleness(r, c.scored, dt.datetime.fromisoformat(r["interval_start"]), cfg)
        apply_live_action(r, cfg)
        results[r["model"]] = xcom_safe({k: v for k, v in r.items() if k not in REPORT_ONLY})  # type: ignore[assignment]
    return results, failures


def apply_live_action(report: dict[str, Any], cfg: PipelineConfig) -> str | None:
    """Carry out what the live records decided: promote the shadow challenger, or serve the better baseline instead
    of the champion model (idempotent: a retry finds the alias moved). Returns the new champion's version."""
    from market_mlops.monitoring.alerts import Alert, send_alert
    from market_mlops.tasks.baseline import serve_baseline_from_live

    action = report.get("live_action")
    name, version = report["model"], str(report["version"])
    if not action or aliases.alias_version(name, aliases.CHAMPION, cfg) != version:
        return None
    kind, target, why = action["action"], str(action["target"]), str(action["reason"])
    if kind == "promote":
        aliases.move_alias(name, aliases.CHAMPION, target, f"live record: {why}", cfg)
        client = store.client(cfg)
        client.set_model_version_tag(name, version, "replaced_by", target)
        client.set_model_version_tag(name, version, "replaced_reason", f"live record: {why}")
        send_alert(Alert(title=f"Promoted {name} v{target} to champion on its live record", severity="info",
                         kind="promotion", facts={"model": name, "from": version, "to": target}, lines=[why]))
        return target
    return serve_baseline_from_live(name, version, target, why, cfg)


def staleness_findings(champion_age_days: float, is_baseline: bool, session_forecasts: int, max_age_days: int,
                       interval_start: dt.datetime) -> list[str]:
    """What is stale about a champion at a check (pure): a model older than `max_age_days` (data it never learned;
    a baseline has nothing to learn), or no forecast for the session the check is for."""
    found = []
    if not is_baseline and champion_age_days > max_age_days:
        found.append(f"its cutoff is {champion_age_days:.0f} days old (drift.max_champion_age_days {max_age_days}): "
                     "no retrain since has passed the gate; the next one will try again")
    if session_forecasts == 0:
        found.append(f"no forecast for the session from {interval_start:%Y-%m-%d %H:%M} UTC: its bars are missing "
                     "or a feature could not be computed (see the task log)")
    return found


def _alert_staleness(report: dict[str, Any], scored: pd.DataFrame, interval_start: dt.datetime,
                     cfg: PipelineConfig) -> None:
    """A stale champion or a series without a forecast for its session: a warning alert (never a failed task)."""
    import pandas as pd

    from market_mlops.monitoring.alerts import Alert, send_alert

    session = scored[pd.to_datetime(scored["ts"], utc=True) >= pd.Timestamp(interval_start)] if len(scored) else scored
    lines = staleness_findings(float(report.get("champion_age_days", 0.0)), report.get("serving") == "baseline",
                               len(session), cfg.drift.max_champion_age_days, interval_start)
    if lines:
        send_alert(Alert(title=f"Stale: {report['model']} v{report['version']}", severity="warning", kind="staleness",
                         facts={"model": report["model"], "version": report["version"],
                                "interval_end": report["interval_end"][:16]}, lines=lines))


def _feature_rule(cfg: PipelineConfig) -> str:
    return (f"a feature has drifted when its PSI over the last {cfg.drift.window} bars exceeds its own limit: the "
            f"{cfg.drift.null_quantile:.0%} quantile of the PSI between stretches of that length of its training "
            f"history and the rest (a noisy feature gets a higher limit), never below {cfg.drift.psi_alert}")


def _rounded(value: float, digits: int) -> float:
    return round(value, digits) if np.isfinite(value) else value


REPORT_THREADS = 4  # reports a shard logs at once


def report_threads(cfg: PipelineConfig, reports: int) -> int:
    """Through a tracking server each report waits on round trips; into the embedded store (SQLite, local files) a
    second thread would only contend for its write lock."""
    return max(1, min(REPORT_THREADS, reports)) if cfg.mlflow_tracking_uri.startswith(("http:", "https:")) else 1


def _report_key(report: dict[str, Any]) -> str:
    return _run_key(report["model"], report["interval_end"])


def _run_key(model: str, interval_end: str) -> str:
    return f"drift-{model}-{interval_end[:16]}"


def _report_run(cfg: PipelineConfig, model: str, version: str, interval_end: dt.datetime,
                recorded: str | None) -> tuple[str, bool]:
    """(run id, RUNNING) of a champion's report run for this interval: the one its check's SQL record names (ended:
    a check is recorded after its report), else one of that name (a try that failed before recording its check:
    logged into again, not doubled), else a new one."""
    if recorded:
        return recorded, False
    client = store.client(cfg)
    key = _run_key(model, interval_end.isoformat())
    found = client.search_runs([store.experiment_id(cfg, store.DRIFT_EXPERIMENT)],
                               filter_string=f"attributes.run_name = '{key}'", max_results=1,
                               order_by=["attributes.start_time DESC"])
    if found:
        return found[0].info.run_id, found[0].info.status == "RUNNING"
    return _new_report_run(cfg, model, version, key), True


def _new_report_run(cfg: PipelineConfig, model: str, version: str, key: str) -> str:
    return str(store.client(cfg).create_run(store.experiment_id(cfg, store.DRIFT_EXPERIMENT), run_name=key,
                                            tags={"mlops.run_key": key, "model": model, "model_version": version}).info.run_id)


def _log_report(cfg: PipelineConfig, report: dict[str, Any], history: list[dict[str, Any]],
                run_id: str | None) -> str:
    """The report as JSON and HTML in the MLflow experiment `market-drift` (one run per model and interval: `run_id`,
    a new one when None or deleted since): its tags and metrics in one batch while both files upload.
    A run that cannot be written is ended FAILED, never left RUNNING. The client API, not the fluent one: a shard
    logs its reports from several threads."""
    import tempfile
    import time
    from concurrent.futures import ThreadPoolExecutor

    from mlflow.entities import Metric, RunTag
    from mlflow.exceptions import MlflowException

    from market_mlops.monitoring.drift_report import render_html

    key = _report_key(report)
    client = store.client(cfg)
    tags = [RunTag(k, str(v)) for k, v in {"mlops.run_key": key, "model": report["model"],
                                           "model_version": report["version"], "band": report["band"]}.items()]
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, 0) for k, v in report.items()
               if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)]

    def write(run_id: str) -> str:
        try:
            with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=1) as side:
                batch = side.submit(client.log_batch, run_id, metrics=metrics, tags=tags)
                (Path(tmp) / "drift_report.json").write_text(json.dumps(report, indent=2, default=str))
                (Path(tmp) / "drift_report.html").write_text(render_html(report, history, cfg.drift))
                # One folder, one call: the files one after another (measured against one thread a file, 4 reports
                # at once through an authenticated server to S3: 0.27 s against 0.31 s).
                client.log_artifacts(run_id, tmp, "drift")
                batch.result()
            client.set_terminated(run_id)
        except Exception:
            with contextlib.suppress(Exception):  # a deleted run cannot be ended: the caller decides
                client.set_terminated(run_id, "FAILED")
            raise
        return run_id

    if not run_id:
        return write(_new_report_run(cfg, report["model"], str(report["version"]), key))
    try:
        return write(run_id)
    except MlflowException as error:
        if not _deleted_run(client, run_id):
            raise
        log.warning("drift report run %s of %s was deleted in MLflow (%s): logging a new run", run_id, key,
                    str(error)[:200])
        return write(_new_report_run(cfg, report["model"], str(report["version"]), key))


def _deleted_run(client: Any, run_id: str) -> bool:
    """True when the run is gone or in MLflow's trash; any other failure (the server down) is not a reason to log a
    second run."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    try:
        return bool(client.get_run(run_id).info.lifecycle_stage == "deleted")
    except MlflowException as error:
        return bool(error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST))


def _alert_if_needed(report: dict[str, Any], drifted: list[FeatureDrift], checked: int, emergency_reason: str,
                     airflow_ctx: dict[str, str], cfg: PipelineConfig) -> None:
    """Slack on a drift or emergency band, or when `feature_share_alert` of the features drifted."""
    from market_mlops.monitoring import links
    from market_mlops.monitoring.alerts import Alert, send_alert

    band, name, version = report["band"], report["model"], report["version"]
    feature_alarm = checked > 0 and len(drifted) / checked >= cfg.drift.feature_share_alert
    if band not in ("drift", "emergency") and not feature_alarm:
        return
    title = f"Accuracy {band}: {name} v{version}" if band in ("drift", "emergency") else \
        f"Feature drift: {name} v{version} ({len(drifted)}/{checked} features)"
    lines = [f"{d.feature}: PSI {d.psi} (limit {d.psi_limit}), KS {d.ks}" for d in drifted[:5]]
    if band in ("drift", "emergency"):  # the detectors' evidence; a baseline's also says how the class mix moved
        lines.insert(0, str(report.get("band_reason", "")))
    if band == "emergency":
        lines.append(emergency_reason)
    if report.get("attribution_shift"):  # which features the model leans on differently than on its holdout
        lines.append("attributions moved most: " + ", ".join(f"{f} {m:+.1%} of the total"
                                                             for f, m in report["attribution_shift"]))
    urls = {}
    if airflow_ctx.get("dag_id") and airflow_ctx.get("run_id"):
        urls["Airflow run"] = links.airflow_run_url(airflow_ctx["dag_id"], airflow_ctx["run_id"])
    urls["MLflow model"] = links.mlflow_model_url(name, version, links.mlflow_ui_url(cfg.mlflow_tracking_uri))
    page = links.model_page_url(name)
    if page:
        urls["Model page"] = page
    send_alert(Alert(
        title=title, severity="critical" if band == "emergency" else "warning", kind="drift",
        facts={"symbol": report["symbol"], "timeframe": report["timeframe"], "band": band,
               "accuracy": report["realized_accuracy"], "baseline": report["holdout_accuracy"],
               "delta_pts": report["delta_points"], "resolved": report["resolved"]},
        lines=lines, links=urls))


def xcom_safe(result: dict[str, Any]) -> dict[str, Any]:
    """NaN (no resolved forecast yet, e.g. right after a new champion) as None, nested ones too (the finance
    metrics): XCom is strict JSON and refuses it."""
    from market_mlops.state.store import finite

    return dict(finite(result))


def emergency_retrain_confs(results: list[list[DriftResult]]) -> list[RetrainConf]:
    """Conf of each retrain to trigger (the results of every shard): one model, training data up to the drift
    check's interval end."""
    return [{"symbols": [r["symbol"]], "timeframes": [r["timeframe"]], "horizons": [int(r["horizon"])] if r.get("horizon") else [],
             "until": r["interval_end"],
             "reason": f"emergency: {r['model']} v{r['version']} {r['delta_points']} pts"}
            for shard in results for r in (shard or []) if r and r.get("emergency_retrain_triggered")]


def consensus_of_checks(results: list[list[DriftResult]], interval_end: dt.datetime,
                        cfg: PipelineConfig | None = None) -> list[ConsensusResult]:
    """The per-symbol consensus of the champions every shard checked (`monitoring.consensus`)."""
    from market_mlops.monitoring.consensus import build_consensus

    return build_consensus([r for shard in results for r in (shard or []) if r], interval_end, cfg or get_config())
