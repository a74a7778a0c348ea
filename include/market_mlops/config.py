"""The one typed configuration of the suite.

Values come from `config/pipeline.yaml` (or the file named by `MLOPS_CONFIG`), then from environment variables
`MLOPS__<SECTION>__<KEY>`. Deployment values (paths, URIs, endpoints) belong in the environment; secrets never
appear here: they live in Airflow connections or the environment of the process that needs them.
A bad value fails at load with one line naming the key and what is allowed (`ConfigError`).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_FILE = REPO_ROOT / "config" / "pipeline.yaml"
ENV_PREFIX = "MLOPS__"

DAILY_MINUTES = 1440  # a bar of this length (or longer) is one bar per session, stamped at the open


class ConfigError(ValueError):
    """A configuration value is wrong; the message is one line a user can act on."""

    retryable = False  # a retry cannot fix it: the task fails at once (orchestration.fail_now_when_permanent)
    hint = 'fix that value in the config file or its MLOPS__ variable, then clear the task'


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelSpec(_Strict):
    """How a bar's direction label is drawn: the forward `horizon`-bar return against a flat band around zero."""

    band: Literal["volatility", "fixed"] = Field(
        default="volatility", description="volatility: the band is k x the trailing standard deviation of "
        "horizon-bar returns (past bars only), so each class keeps its share as volatility changes; fixed: the band "
        "is `threshold`")
    k: float = Field(default=0.43, gt=0, le=5, description="band width in standard deviations of horizon-bar "
                     "returns (0.43 leaves a third of normal returns NEUTRAL)")
    window: int = Field(default=120, ge=10, le=5000, description="bars of horizon-bar returns the standard deviation "
                        "is measured over (every one ends at or before the labelled bar)")
    threshold: float = Field(default=0.01, gt=0, lt=0.5, description="the fixed band (band: fixed), a fractional "
                             "return")


class TimeframeSpec(_Strict):
    """Everything the suite knows about one timeframe: adding a timeframe is one entry under `timeframes:`."""

    minutes: int = Field(ge=1, le=DAILY_MINUTES, description="bar length; 1440 = one bar per session, at its open")
    bars_per_year: int = Field(ge=1, description="bars in a trading year (annualises Sharpe-style features)")
    warmup_days: int = Field(ge=1, description="calendar days of history before the first scored bar, so every "
                             "trailing feature window (up to 250 bars) is full")
    refresh_window: int = Field(ge=50, description="resolved bars the weekly weight refresh fits and scores on")
    refresh_lookback_days: int = Field(ge=1, description="calendar days of bars read to find that window")
    partition: Literal["year", "month"] = Field(description="one dataset file per symbol and year, or month")
    horizons: list[int] = Field(min_length=1, description="bars ahead the label looks, one model per horizon; the "
                                "first is the timeframe's main horizon (its model is `SYMBOL-tf-direction`, the others "
                                "`SYMBOL-tf-hN-direction`); `horizon: N` is the same as `horizons: [N]`")
    labels: LabelSpec = Field(default_factory=LabelSpec, description="how the NEUTRAL band is drawn")

    @model_validator(mode="before")
    @classmethod
    def _one_horizon_is_a_list_of_one(cls, data: Any) -> Any:
        if isinstance(data, dict) and "horizon" in data:
            if "horizons" in data:
                raise ValueError("give horizons (a list) or horizon, not both")
            data = {**{k: v for k, v in data.items() if k != "horizon"}, "horizons": [data["horizon"]]}
        return data

    @field_validator("horizons")
    @classmethod
    def _horizons_are_distinct_bar_counts(cls, value: list[int]) -> list[int]:
        bad = [h for h in value if not 1 <= h <= 500]
        if bad:
            raise ValueError(f"horizons {bad} are outside 1..500 bars")
        if len(set(value)) != len(value):
            raise ValueError(f"horizons {value} name one horizon twice")
        return value

    @property
    def horizon(self) -> int:
        """The horizon this spec labels with: the main one (the first), or the one `at` chose."""
        return self.horizons[0]

    def at(self, horizon: int) -> TimeframeSpec:
        """This timeframe seen by the model of one of its horizons (its `horizon` is that one)."""
        return self if horizon == self.horizon else self.model_copy(update={"horizons": [horizon, *[
            h for h in self.horizons if h != horizon]]})

    @property
    def daily(self) -> bool:
        return self.minutes >= DAILY_MINUTES


def _check_ticker(symbol: str) -> str:
    if not symbol or not symbol.replace(".", "").replace("-", "").isalnum() or symbol != symbol.upper():
        raise ValueError(f"{symbol!r} is not an upper-case ticker (letters, digits, '.', '-')")
    return symbol


class UniverseGroup(_Strict):
    """Symbols that share a calendar and the timeframes they are modelled on (and, where they need them, their own
    label settings): stocks on XNYS at d1 and h1, an FX pair at h1 only."""

    name: str = Field(min_length=1)
    calendar: str = Field(default="XNYS", description="an exchange-calendars code, FX or 24/7")
    symbols: list[str] = Field(min_length=1)
    timeframes: list[str] = Field(min_length=1)
    labels: dict[str, dict[str, Any]] = Field(default_factory=dict, description="timeframe -> label settings that "
                                              "differ from `timeframes.<tf>.labels` for this group (k, window, ...)")

    @field_validator("symbols")
    @classmethod
    def _symbols_look_like_tickers(cls, value: list[str]) -> list[str]:
        for symbol in value:
            _check_ticker(symbol)
        return value

    @field_validator("labels")
    @classmethod
    def _labels_are_label_settings(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for override in value.values():
            LabelSpec.model_validate({**LabelSpec().model_dump(), **override})  # unknown keys, bad values: refused
        return value


class Universe(_Strict):
    exchange: str = Field(default="XNYS", description="the calendar: an exchange-calendars code, FX or 24/7")
    benchmark: str | None = Field(default=None, description="cross-asset features are measured against it; None "
                                  "drops them; it may be a symbol outside `symbols` (ingested, not modelled)")
    symbols: list[str] = Field(min_length=1)
    timeframes: list[str] = Field(min_length=1)
    calendars: dict[str, str] = Field(default_factory=dict, description="symbol -> calendar where it differs from "
                                      "`exchange` (an FX pair in a stock universe: {EURUSD: FX})")
    groups: list[UniverseGroup] = Field(default_factory=list, description="instead of symbols x timeframes: groups "
                                        "of symbols, each with its calendar and timeframes (symbols, timeframes, "
                                        "exchange and calendars are then derived from them)")

    @model_validator(mode="before")
    @classmethod
    def _flatten_groups(cls, data: Any) -> Any:
        """With `groups`, the flat fields every consumer reads are derived from them (and may not be given too)."""
        if not isinstance(data, dict) or not data.get("groups"):
            return data
        given = [k for k in ("symbols", "timeframes", "calendars") if data.get(k)]
        if given:
            raise ValueError(f"give either groups or {'/'.join(given)}, not both")
        groups = [UniverseGroup.model_validate(g) if isinstance(g, dict) else g for g in data["groups"]]
        symbols = [s for g in groups for s in g.symbols]
        twice = sorted({s for s in symbols if symbols.count(s) > 1})
        if twice:
            raise ValueError(f"symbols {twice} are in more than one group: a symbol belongs to one group")
        exchange = data.get("exchange") or groups[0].calendar
        return {**data, "groups": groups, "exchange": exchange, "symbols": symbols,
                "timeframes": list(dict.fromkeys(t for g in groups for t in g.timeframes)),
                "calendars": {s: g.calendar for g in groups for s in g.symbols if g.calendar != exchange}}

    @field_validator("symbols")
    @classmethod
    def _symbols_look_like_tickers(cls, value: list[str]) -> list[str]:
        for symbol in value:
            _check_ticker(symbol)
        if len(set(value)) != len(value):
            raise ValueError("symbols must be unique")
        return value

    @field_validator("benchmark")
    @classmethod
    def _benchmark_looks_like_a_ticker(cls, value: str | None) -> str | None:
        """None or '' (in a config file as in the environment): no benchmark."""
        return None if value is None or not value.strip() else _check_ticker(value)

    def calendar_of(self, symbol: str) -> str:
        """The calendar a symbol trades on: its own entry in `calendars`, else `exchange`."""
        return self.calendars.get(symbol, self.exchange)

    def group_of(self, symbol: str) -> UniverseGroup | None:
        return next((g for g in self.groups if symbol in g.symbols), None)

    def models(self, symbol: str, timeframe: str) -> bool:
        """Whether (symbol, timeframe) is a configured pair: every symbol x timeframe without groups; a group's own
        timeframes with them. The benchmark (not modelled) is ingested on every timeframe."""
        group = self.group_of(symbol)
        return group is None or timeframe in group.timeframes

    @property
    def schedule_calendar(self) -> str:
        """The calendar runs follow: `exchange`, or a composite `XNYS+FX` when some symbols trade on another one
        (each run covers every calendar's sessions up to its session date, and waits for the latest close)."""
        others = sorted({c for s, c in self.calendars.items() if s in self.data_symbols and c != self.exchange})
        return "+".join([self.exchange, *others])

    @property
    def data_symbols(self) -> list[str]:
        """What ingestion fetches, checks and stores: the modelled symbols and the benchmark."""
        extra = [self.benchmark] if self.benchmark and self.benchmark not in self.symbols else []
        return [*self.symbols, *extra]


class SyntheticSource(_Strict):
    seed: int = 7
    origin: dt.date = dt.date(2018, 1, 2)
    signal_strength: float = Field(default=0.35, ge=0, le=2)
    shift_after: dt.date | None = None
    shift_kind: Literal["regime", "flow"] = Field(
        default="regime", description="what changes after shift_after: regime (volatility x2.5, volume x3, the flow "
        "effect reversed) or flow (the flow effect reversed alone: a planted loss of the models' edge)")


class Source(_Strict):
    kind: Literal["synthetic", "landing"] = "synthetic"
    landing_uri: str = "landing"
    price_basis: Literal["adjusted", "raw"] = Field(
        default="adjusted", description="adjusted: prices before a split (or Adj Close / Close) scaled to today's "
        "shares, so features and labels see no fake crash; raw: as traded")
    synthetic: SyntheticSource = SyntheticSource()


class Storage(_Strict):
    data_root: str = "data"
    dvc_remote_url: str = "dvc-remote"
    s3_endpoint_url: str | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_artifact_root: str | None = Field(
        default=None, description="where new experiments keep run and model files; null = the tracking server's "
        "own (its --artifacts-destination, e.g. S3 through --serve-artifacts), or <MLOPS_HOME>/mlflow/artifacts with "
        "the embedded SQLite store")
    state_url: str | None = Field(default=None, description="the suite's SQL store (SQLAlchemy URL): data versions, "
                                  "drift checks, alias moves; null = sqlite:///<MLOPS_HOME>/state.db")
    model_cache: str | None = Field(default="cache/models", description="this worker's cache of verified model "
                                    "files (their checksums are computed again on every load); null = always "
                                    "download from the store")
    batches_url: str | None = Field(default=None, description="gated batches on their way to the dataset, their "
                                    "validation reports and quarantined batches: null = the data root; an s3:// URL "
                                    "when workers share no disk (one worker gates, another merges)")

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint_is_http(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must start with http:// or https://")
        return value


class Validation(_Strict):
    max_missing_sessions: int = Field(default=0, ge=0)
    drop_off_session: bool = Field(default=False, description="drop (and list) bars outside their calendar's "
                                   "sessions instead of refusing the batch: a vendor's after-close FX ticks")
    max_abs_return: float = Field(default=0.25, gt=0, le=5)


class FeatureSelectionSpec(_Strict):
    """Which features a fit uses, chosen on its own training rows (each fold, the holdout fit and the refit)."""

    max_abs_correlation: float = Field(default=1.0, gt=0, le=1, description="drop a feature whose |Pearson rho| "
                                       "with an earlier kept one is above this (1 = keep redundant features)")
    min_importance: float = Field(default=0.001, ge=0, lt=1, description="drop a feature below this share of a "
                                  "ranking model's total split gain (0 = no importance filter)")


class Training(_Strict):
    seed: int = 42
    folds: int = Field(default=4, ge=2, le=20)
    embargo_bars: int = Field(default=5, ge=0)
    holdout_fraction: float = Field(default=0.2, gt=0.05, lt=0.5)
    refit: Literal["full", "none"] = Field(
        default="full", description="full: once the gate has decided on the evaluated fit, the served version is the "
        "same configuration refit on every labelled row up to the cutoff; none: serve the evaluated fit (it never "
        "learned the holdout, the newest `holdout_fraction` of the history)")
    min_train_rows: int = Field(default=250, ge=50)
    feature_selection: FeatureSelectionSpec = Field(default_factory=FeatureSelectionSpec, description="correlated-"
                                                    "feature removal and importance ranking inside each fit")
    history_years: int = Field(default=8, ge=1, le=40)
    search_trials: int = Field(default=0, ge=0, le=500)
    search_timeout_s: int = Field(default=120, ge=1)
    rf_estimators: int = Field(default=60, ge=10)
    boost_rounds: int = Field(default=300, ge=10)
    gate_metric: Literal["log_loss", "accuracy"] = Field(
        default="log_loss", description="the score the gate proves a challenger's skill on, against each baseline and "
        "the champion: log_loss (proper: rewards honest probabilities) or accuracy (the calls only); the other is "
        "shown beside")
    yearly_false_promotions: float = Field(
        default=0.10, gt=0, le=0.5, description="the chance a challenger with no skill replaces a champion within a "
        "champion-year, over its 12 monthly retrains (half of it), its challengers' live records (two fifths) and 52 "
        "weekly refreshes (a tenth); each test is held to its share over its count a year")
    min_compare_outcomes: int = Field(default=30, ge=1, description="separate outcomes (rows / horizon: overlapping "
                                      "labels share theirs) a comparison needs to judge anything, holdout or live; "
                                      "fewer: 'too few outcomes', nothing changes")
    weight_prior_rows: float = Field(default=250, ge=0, description="the weekly refresh shrinks the fitted weights "
                                     "toward the current ones as if they came from this many rows (0 = no shrinkage)")
    refresh_min_rows: int = Field(default=100, ge=10, description="fewer resolved bars in the refresh's fit window: "
                                  "the current weights are kept")
    gate_requires: Literal["ic", "rank_ic", "long_short_sharpe"] | None = Field(
        default=None, description="a finance metric the challenger's holdout value must have above 0 to be promoted")
    promotion_confidence: float = Field(default=0.90, ge=0.5, lt=1, description="two-sided confidence of the "
                                        "replay's block-bootstrap intervals between policies")
    max_data_lag_days: int = Field(default=3, ge=0, le=366)
    bootstrap_samples: int = Field(default=500, ge=50)
    model_artifacts: Literal["full", "lean"] = Field(
        default="full", description="what a version carries. full: an MLflow pyfunc model (servable with `mlflow "
        "models serve`; its signature names the inputs, an example is in the run's drift reference; ~0.5 s a version "
        "on the embedded stack, ~16 more files through a tracking server). lean: the "
        "native model files and what the suite reads (drift reference, holdout metrics, evaluation files), no pyfunc "
        "wrapper: for fleets of thousands scored in batch by the suite itself")
    pool_slots: int = Field(default=2, ge=1, description="slots of the Airflow pool `training` (market-mlops pools "
                            "sets it): model fits that run at once in the deployment")
    fits_per_worker: int | None = Field(default=None, ge=1, description="fits one worker runs at once: null = the "
                                        "pool's slots, or the Celery worker's concurrency when that is lower; each "
                                        "fit gets cores / this many threads, never more threads than cores")


class Drift(_Strict):
    monitor_below: float = Field(default=-5.0, description="accuracy points vs the reference: the drop the monitor "
                                 "band's change detector is designed to detect")
    drift_below: float = Field(default=-10.0, description="the drop the drift band's detector (an alert) is designed "
                               "to detect")
    emergency_below: float = Field(default=-15.0, description="the drop the emergency band's detector (an emergency "
                                   "retrain) is designed to detect")
    min_outcomes: float = Field(default=25, ge=1, description="resolved calls / horizon before a consensus's or a "
                                "member's realized accuracy is shown and used (the bands' own minimum is their "
                                "detector's: monitoring/detector.py)")
    accuracy_outcomes: int = Field(default=30, ge=1, description="the realized accuracy shown reads the champion's "
                                   "last resolved forecasts worth this many outcomes (this x horizon forecasts)")
    band_confidence: float = Field(default=0.80, ge=0.5, lt=1, description="the calls are held to the reference "
                                   "accuracy's one-sided lower bound at this confidence (it was measured on a few "
                                   "hundred rows), and the realized accuracy is shown with its bound")
    window: int = Field(default=60, ge=5, description="recent bars the feature drift (PSI, KS) is measured on")
    psi_alert: float = Field(default=0.25, gt=0)
    null_quantile: float = Field(default=0.99, gt=0.5, le=1)
    feature_share_alert: float = Field(default=0.05, gt=0, le=1)
    cooldown_days: int = Field(default=7, ge=0)
    max_champion_age_days: int = Field(default=60, ge=1, description="a champion model whose cutoff is older than "
                                       "this raises a staleness alert at each check")
    min_feature_bars: int = Field(default=30, ge=5, description="fewer recent bars than this: feature drift is "
                                  "'not enough data', never a PSI of a handful of bars")
    monitor_alarm_checks: float = Field(default=20, ge=1, description="the monitor band's designed run length "
                                        "under no drift: outcomes between false alarms (checks, a check a session, "
                                        "when a check resolves an outcome or more); its CUSUM threshold is set from "
                                        "it (monitoring/detector.py)")
    drift_alarm_checks: float = Field(default=300, ge=1, description="the drift band's designed run length, as "
                                      "monitor_alarm_checks: a false drift alarm about once in 300 outcomes; measured "
                                      "by make bench at 1.5-3.5 % of judged no-drift checks in the band")
    emergency_alarm_checks: float = Field(default=1500, ge=1, description="the emergency band's designed run length, "
                                          "as monitor_alarm_checks; measured by make bench at under 0.1 % of judged "
                                          "no-drift checks")

    @model_validator(mode="after")
    def _bands_are_ordered(self) -> Drift:
        if not (0 >= self.monitor_below > self.drift_below > self.emergency_below):
            raise ValueError(
                "bands must satisfy 0 >= monitor_below > drift_below > emergency_below "
                f"(got {self.monitor_below}, {self.drift_below}, {self.emergency_below})"
            )
        return self


class Fleet(_Strict):
    """How the per-model DAGs map over a large universe: one mapped task per shard of models."""

    max_mapped_tasks: int = Field(default=256, ge=1, le=1024, description="mapped tasks a per-model DAG run makes "
                                  "at most: models are grouped into shards beyond it (Airflow refuses a list longer "
                                  "than [core] max_map_length, 1,024 by default, and its grid slows near a thousand)")
    shard_size: int | None = Field(default=None, ge=1, description="models per shard; null = one model per task up "
                                   "to max_mapped_tasks models, then as few per shard as fit in max_mapped_tasks")

    def size_for(self, models: int) -> int:
        """Models per shard for a universe of `models`."""
        return self.shard_size or max(1, -(-models // self.max_mapped_tasks))


class Schedule(_Strict):
    start_date: dt.date = Field(default=dt.date(1990, 1, 2), ge=dt.date(1990, 1, 2),
                                description="DAG start date: runs and backfills may go back to it (calendars start "
                                            "1990-01-02)")


class Alerts(_Strict):
    slack_conn_id: str = "slack_alerts"


class Retention(_Strict):
    """What `market-mlops retention` and the weekly `model_retention` DAG keep; the rest is archived."""

    keep_versions: int = Field(default=5, ge=1, description="per model, the newest versions kept besides the "
                               "champion, the challenger and the version the champion replaced (rollback works to "
                               "each); older ones are tagged archived and their model files removed")
    archive_after_months: int = Field(default=12, ge=1, description="forecasts and drift checks older than this, of "
                                      "versions no longer kept, move from the SQL store to Parquet archives")
    archive_url: str | None = Field(default=None, description="where those archives go: null = <batches_url>/archive "
                                    "(an s3:// batches_url puts them in the object store)")
    apply_on_schedule: bool = Field(default=False, description="the weekly model_retention DAG's scheduled runs "
                                    "carry the plan out (false: they log it, as every run does unless told to apply)")


class Stress(_Strict):
    """How a champion is judged beyond one backtest path: named crisis windows and resampled paths of its book."""

    windows: dict[str, tuple[dt.date, dt.date]] = Field(
        default_factory=lambda: {"2008-09..2009-03 (financial crisis)": (dt.date(2008, 9, 1), dt.date(2009, 3, 31)),
                                 "2020-02..2020-04 (covid crash)": (dt.date(2020, 2, 1), dt.date(2020, 4, 30)),
                                 "2022 (rate hikes)": (dt.date(2022, 1, 1), dt.date(2022, 12, 31))},
        description="named stress windows [first day, last day]: the replay and each retrain report the champion on "
        "those its forecasts cover")
    bootstrap_paths: int = Field(default=1000, ge=100, description="stationary-bootstrap paths of the long/short "
                                 "book's per-bar returns (arch; mean block length by Politis-White)")
    seed: int = 7


class PipelineConfig(_Strict):
    timeframes: dict[str, TimeframeSpec]  # before `universe`, whose validator checks against it
    universe: Universe
    source: Source = Source()
    storage: Storage = Storage()
    validation: Validation = Validation()
    training: Training = Training()
    drift: Drift = Drift()
    alerts: Alerts = Alerts()
    schedule: Schedule = Schedule()
    fleet: Fleet = Fleet()
    retention: Retention = Retention()
    stress: Stress = Stress()
    home: Path = Field(default=REPO_ROOT / ".state", description="MLOPS_HOME: where relative paths resolve")

    @field_validator("timeframes")
    @classmethod
    def _names_are_simple(cls, value: dict[str, TimeframeSpec]) -> dict[str, TimeframeSpec]:
        bad = [name for name in value if not name.isalnum() or name != name.lower()]
        if bad:
            raise ValueError(f"timeframe names {bad} must be lower-case letters and digits (like d1, h4, m15)")
        return value

    @field_validator("universe")
    @classmethod
    def _every_timeframe_has_a_spec(cls, value: Universe, info: ValidationInfo) -> Universe:
        specs = info.data.get("timeframes") or {}
        missing = [tf for tf in value.timeframes if tf not in specs]
        if missing:
            raise ValueError(f"timeframes {missing} have no entry under `timeframes:` (configured: {sorted(specs)})")
        return value

    # Resolved locations -------------------------------------------------------------------------------------
    def path(self, value: str) -> Path:
        """Resolve a configured path against MLOPS_HOME (absolute paths stay as they are)."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.home / p

    @property
    def data_root(self) -> Path:
        return self.path(self.storage.data_root)

    @property
    def batches_url(self) -> str:
        url = self.storage.batches_url
        return url.rstrip("/") if url and "://" in url else str(self.path(url) if url else self.data_root)

    @property
    def archive_url(self) -> str:
        url = self.retention.archive_url
        return url.rstrip("/") if url and "://" in url else str(self.path(url)) if url else f"{self.batches_url}/archive"

    @property
    def dvc_remote_url(self) -> str:
        url = self.storage.dvc_remote_url
        return url if "://" in url else str(self.path(url))

    @property
    def landing_uri(self) -> str:
        uri = self.source.landing_uri
        return uri if "://" in uri else str(self.path(uri))

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.storage.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    @property
    def state_url(self) -> str:
        return self.storage.state_url or f"sqlite:///{self.home / 'state.db'}"

    @property
    def mlflow_artifact_root(self) -> str | None:
        """None: a tracking server decides. A local folder under a tracking server would keep every run's files on
        the disk of the worker that logged them, where no other host (or the server's UI) can read them."""
        root = self.storage.mlflow_artifact_root
        if root is None:
            return None if self.mlflow_tracking_uri.startswith(("http://", "https://")) else \
                self.path("mlflow/artifacts").as_uri()
        return root if "://" in root else self.path(root).as_uri()

    @property
    def bar_minutes(self) -> dict[str, int]:
        """{timeframe: bar length in minutes} of every configured timeframe."""
        return {name: spec.minutes for name, spec in self.timeframes.items()}

    def spec(self, timeframe: str, horizon: int | None = None) -> TimeframeSpec:
        """A timeframe's settings; with `horizon`, as its model of that horizon sees them (`spec.horizon`)."""
        try:
            found = self.timeframes[timeframe]
        except KeyError:
            raise ConfigError(f"unknown timeframe {timeframe!r}: configured are {sorted(self.timeframes)}") from None
        return found if horizon is None else found.at(horizon)

    def main_horizon(self, timeframe: str) -> int:
        return self.spec(timeframe).horizon

    def model_keys(self, symbols: list[str] | None = None, timeframes: list[str] | None = None,
                   horizons: list[int] | None = None) -> list[tuple[str, str, int]]:
        """(symbol, timeframe, horizon) of every model of `pairs`, the main horizon first; `horizons` narrows them
        (a horizon no chosen timeframe declares is an error)."""
        keys = [(s, t, h) for s, t in self.pairs(symbols, timeframes) for h in self.spec(t).horizons
                if not horizons or h in horizons]
        declared = {h for t in (timeframes or self.universe.timeframes) for h in self.spec(t).horizons}
        unknown = sorted(set(horizons or []) - declared)
        if unknown:
            raise ConfigError(f"unknown horizon(s) {unknown}: the chosen timeframes declare {sorted(declared)} "
                              "(timeframes.<tf>.horizons)")
        return keys

    def pairs(self, symbols: list[str] | None = None, timeframes: list[str] | None = None,
              with_benchmark: bool = False) -> list[tuple[str, str]]:
        """(symbol, timeframe) pairs to work on: the universe (and the benchmark's data, `with_benchmark`), optionally
        narrowed; unknown names are an error."""
        allowed = self.universe.data_symbols if with_benchmark else self.universe.symbols
        chosen_symbols = symbols or allowed
        chosen_tfs = timeframes or list(self.universe.timeframes)
        unknown = [s for s in chosen_symbols if s not in allowed]
        if unknown:
            raise ConfigError(f"unknown symbol(s) {unknown}: allowed are {allowed} (universe.symbols"
                              f"{', universe.benchmark' if with_benchmark and self.universe.benchmark else ''})")
        unknown_tf = [t for t in chosen_tfs if t not in self.timeframes]
        if unknown_tf:
            raise ConfigError(f"unknown timeframe(s) {unknown_tf}: allowed are {sorted(self.timeframes)}")
        return [(s, t) for s in chosen_symbols for t in chosen_tfs if self.universe.models(s, t)]

    def labels_of(self, symbol: str, timeframe: str) -> LabelSpec:
        """The label settings of a pair: its timeframe's, with its group's overrides."""
        base = self.spec(timeframe).labels
        group = self.universe.group_of(symbol)
        override = group.labels.get(timeframe) if group is not None else None
        return LabelSpec.model_validate({**base.model_dump(), **override}) if override else base


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """Turn MLOPS__SECTION__KEY=value into a nested dict of YAML-parsed values."""
    nested: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if not keys:
            continue
        value: Any = yaml.safe_load(raw) if raw.strip() else None
        if isinstance(value, str) and keys[-1] in {"symbols", "timeframes", "horizons"}:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, int) and keys[-1] == "horizons":
            value = [value]
        node = nested
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return nested


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "<top level>"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against config/pipeline.yaml)"
    elif first["type"] == "literal_error":
        message = f"got {first.get('input')!r}: {message}"
    more = f" (+{len(error.errors()) - 1} more)" if len(error.errors()) > 1 else ""
    return f"config key '{key}': {message}{more}"


HOME_SETTINGS = "settings.env"  # in MLOPS_HOME: the MLOPS__ settings the home was set up with


def home_of(environ: dict[str, str] | os._Environ[str]) -> Path:
    return Path(environ.get("MLOPS_HOME") or REPO_ROOT / ".state")


def read_home_settings(home: Path) -> dict[str, str]:
    """The `MLOPS__KEY=value` lines a home was set up with (`write_home_settings`): every process on that home (the
    demo, `make ui`'s servers and the DAG runs they start, `market-mlops`) sees the same settings unless its own
    environment sets a key. Empty when there is no such file."""
    path = home / HOME_SETTINGS
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs if key.strip().startswith(ENV_PREFIX)}


def write_home_settings(home: Path, settings: dict[str, str]) -> Path:
    """Record the `MLOPS__` settings a home is set up with (the demo: its landing source and its market's shift)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / HOME_SETTINGS
    kept = {k: v for k, v in sorted(settings.items()) if k.startswith(ENV_PREFIX)}
    path.write_text("# The settings this MLOPS_HOME was set up with; every process on it reads them (its own\n"
                    "# environment wins). Edit or delete a line to change what later runs on this home do.\n"
                    + "".join(f"{k}={v}\n" for k, v in kept.items()))
    return path


def with_home_settings(environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """`environ` over the settings its home was set up with."""
    return {**read_home_settings(home_of(environ)), **dict(environ)}


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> PipelineConfig:
    """Read the YAML, apply environment overrides (this process's environment over its home's settings file, when
    `environ` is not given), validate; raise ConfigError with one line on a bad value."""
    environ = with_home_settings(os.environ) if environ is None else dict(environ)
    config_file = Path(path or environ.get("MLOPS_CONFIG") or DEFAULT_CONFIG_FILE)
    try:
        raw = yaml.safe_load(config_file.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {config_file} not found: set MLOPS_CONFIG to an existing YAML file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {config_file}{where} is not valid YAML: {exc.__class__.__name__}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {config_file} must hold a mapping of sections, not {type(raw).__name__}")
    overrides = _env_overrides(environ)
    merged = _deep_merge(raw, overrides)
    for name, given in (overrides.get("timeframes") or {}).items():  # the variable's horizon(s) replace the file's
        spec = merged["timeframes"].get(name) if isinstance(merged.get("timeframes"), dict) else None
        if isinstance(given, dict) and isinstance(spec, dict):
            for key in {"horizon", "horizons"} & set(given):
                spec.pop({"horizon": "horizons", "horizons": "horizon"}[key], None)
    merged["home"] = environ.get("MLOPS_HOME") or merged.get("home") or str(REPO_ROOT / ".state")
    try:
        return PipelineConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


@functools.cache
def _cached(key: tuple[tuple[str, str], ...]) -> PipelineConfig:
    return load_config(environ=dict(key))


def get_config() -> PipelineConfig:
    """The configuration for this process, re-read when the relevant environment changes."""
    environ = with_home_settings(os.environ)
    relevant = tuple(sorted((k, v) for k, v in environ.items() if k.startswith(("MLOPS_", "MLOPS__"))))
    return _cached(relevant)
