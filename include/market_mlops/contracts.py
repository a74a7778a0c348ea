"""What tasks hand each other through XCom and what they report: small, JSON-safe, typed.

Airflow serialises these as plain dicts; the types say what a downstream task may rely on. Bands and gate outcomes
are `Literal`s so a type checker catches a misspelt comparison.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

Band = Literal["normal", "monitor", "drift", "emergency"]
GateOutcome = Literal["promoted", "kept as challenger", "already champion", "too few outcomes"]
RetrainTrigger = Literal["param", "asset", "cron"]


class ModelKey(TypedDict):
    symbol: str
    timeframe: str
    horizon: int  # bars ahead (the timeframe's `horizons`): one model per horizon


class ChampionRef(ModelKey):
    version: str
    emergency_triggers: NotRequired[list[str]]  # drift check: emergency retrains within the cooldown (ISO times)


class ModelShard(TypedDict):
    """What one mapped task of a per-model DAG works on: models one after another (`fleet` in config)."""

    label: str  # the first and last model, the map index's name in the UI
    models: list[ModelKey]


class ChampionShard(TypedDict):
    label: str
    champions: list[ChampionRef]


class RawFileRef(TypedDict):
    uri: str  # local path or s3:// URI
    name: str
    symbol: NotRequired[str]  # when neither a column nor the file name says (an import's --symbol)
    timeframe: NotRequired[str]


class FetchedBatch(TypedDict):
    interval_start: str
    interval_end: str
    sessions: list[str]
    symbols: list[str]
    timeframes: list[str]
    source: str
    files: list[RawFileRef]


class ValidatedBatch(TypedDict):
    interval_start: str
    interval_end: str
    sessions: list[str]
    staged: str  # Parquet of the batch's canonical bars
    rows: int
    result_id: str
    rows_changed: NotRequired[dict[str, int]]  # stored bars a restatement changes, per symbol (allowed by the run)
    seconds: NotRequired[dict[str, float]]  # normalise (read every file), gate (Great Expectations, history)
    dropped: NotRequired[list[str]]  # bars outside their calendar's sessions, dropped (validation.drop_off_session)
    splits: NotRequired[list[dict[str, str | float]]]  # the splits its files show: symbol, timeframe, ts, ratio


class VersionRecord(TypedDict):
    md5: str
    files: int
    size: int
    objects_pushed: int
    interval_start: str
    interval_end: str
    sessions: list[str]
    rows_added: dict[str, int]
    rows_changed: NotRequired[dict[str, int]]
    rows_unchanged: NotRequired[int]
    gx_result_id: str
    run_id: str
    remote: str
    logged_at: NotRequired[str]
    seconds: NotRequired[dict[str, float]]  # merge, dvc_add, push
    unchanged: NotRequired[bool]  # the same bytes as the head already: no version logged, the head not moved
    splits: NotRequired[list[dict[str, str | float]]]  # the splits its batch showed (what a later file is read against)


class RetrainPlan(TypedDict):
    until: str
    md5: str | None
    trigger: RetrainTrigger


class TrainingData(TypedDict):
    md5: str
    path: str  # a read-only checkout of that version
    gx_result_id: str
    interval_end: str


class GateSummary(TypedDict, total=False):
    decision: GateOutcome
    reason: str
    previous_champion: str | None
    champion_version: str | None
    metric: str  # what the gate decided on: log_loss (default) or accuracy (`training.gate_metric`)
    challenger_accuracy: float
    climatology_accuracy: float
    persistence_accuracy: float
    challenger_log_loss: float
    climatology_log_loss: float
    persistence_log_loss: float
    calibration_error: float | None  # the challenger's holdout expected calibration error (reliability table)
    baseline_compared: str  # the better baseline (lower log-loss on the same rows)
    skill_mean: float | None  # score difference over the better baseline (log-loss: nats; positive: the challenger is better)
    skill_low: float | None  # its interval at the test's level
    skill_high: float | None
    skill_e_value: float | None  # the evidence against "no better than that baseline"; the weaker of the two baselines'
    e_threshold: float  # 1 / the test's level
    test_level: float  # alpha of this test: its share of training.yearly_false_promotions
    outcomes: float  # holdout rows / horizon: overlapping labels share outcomes
    accuracy_diff_mean: float | None  # accuracy(challenger) - accuracy(better baseline), shown beside
    accuracy_diff_low: float | None
    accuracy_diff_high: float | None
    champion_rows: int  # holdout rows the champion had not learned, on which it was compared
    diff_mean: float | None  # the challenger against the champion on those rows (the metric's difference)
    diff_low: float | None
    diff_high: float | None
    test_number: int  # the weekly refresh: the how-many-th test of this champion
    champion_vs_baseline_mean: float | None  # the better baseline against the champion on rows it never learned
    champion_vs_baseline_e_value: float | None


class TrainingSummary(GateSummary, total=False):
    model: str
    symbol: str
    timeframe: str
    horizon: int
    version: str
    run_id: str
    data_version: str
    holdout_rows: int
    accuracy: float
    balanced_accuracy: float
    log_loss: float
    long_flat_return: float
    weights: list[float]
    parent_version: str
    previous_weights: list[float]
    eval_rows: int
    ic: float | None
    serving: Literal["model", "baseline"]  # what is champion after this run: a trained model or a naive baseline
    baseline_rule: str  # when a baseline was made champion by this run: climatology | persistence
    fit_end: str  # the last bar the registered (served) models learned
    evaluation_end: str  # the last bar of the holdout the gate decided on
    history: str  # the rows it learned from, and whether training.history_years left older stored bars out
    skipped: str  # the weekly refresh made no version: why
    seconds: dict[str, float]  # a retrain's phases: features, fit, evaluate, mlflow_log, gate, register, promote


class RetrainReport(TypedDict):
    trained: int
    models: int
    promoted: list[str]


class DriftResult(TypedDict):
    model: str
    version: str
    symbol: str
    timeframe: str
    horizon: NotRequired[int]  # recorded since horizons became models (older checks lack it)
    interval_start: str
    interval_end: str
    band: Band
    realized_accuracy: float | None
    holdout_accuracy: float
    delta_points: float | None
    resolved: int
    outcomes: float  # resolved calls since the champion began serving / calls per outcome (`monitoring.detector`)
    upper_delta_points: float | None  # the drop the evidence is sure of (upper bound - reference, points)
    band_reason: str
    outcomes_needed: NotRequired[float | None]  # while too few outcomes resolved to judge a band: how many it needs
    serving: Literal["model", "baseline"]
    holdout_skill: NotRequired[float | None]  # a model's gate log-loss skill over its better baseline (nats)
    forecasts_scored: int
    champion_age_days: float  # days from the champion's cutoff to this check
    finance: dict[str, float | None]  # ic, rank_ic, long_short_return/_sharpe/_max_drawdown, turnover (live)
    features_drifted: int
    features_checked: int
    feature_drift: str  # "measured", or why not ("not enough data: ...")
    max_psi: float
    prediction_psi: float | None
    emergency_retrain_triggered: bool
    in_cooldown: bool
    mlflow_run_id: str
    seconds: NotRequired[dict[str, float]]  # phases: load, window, score, measure, report (MLflow)


class RetrainConf(TypedDict):
    symbols: list[str]
    timeframes: list[str]
    horizons: list[int]  # empty: every horizon of those timeframes
    until: str
    reason: str


RollbackResult = TypedDict("RollbackResult", {"model": str, "from": str, "to": str})


class RetentionReport(TypedDict):
    applied: bool  # False: a dry run, nothing changed
    as_of: str
    data_as_of: NotRequired[str]  # the data versions' clock: as_of, or the newest data's end when earlier
    models: int
    versions_kept: int
    versions_archived: dict[str, list[int]]  # model -> versions archived (or to archive)
    rows_archived: dict[str, int]  # table -> rows moved to Parquet (or to move), older than `rows_before`
    rows_before: str
    data_versions_collected: list[str]
    remote_objects_removed: int
    cache_objects_removed: int


class ConsensusResult(TypedDict):
    symbol: str
    direction: str  # BEARISH | NEUTRAL | BULLISH
    agreement: float  # the weight of the champions calling that direction (1 = all agree)
    members: int
    realized_accuracy: float | None  # of the symbol's resolved consensus calls so far
    anchor_accuracy: float | None  # of its anchor champion alone on the same calls
    resolved: int
