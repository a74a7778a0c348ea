"""What the Models pages show, gathered with fleet-sized reads: paged registry searches for every model's aliases and
every version's gate tags and creation time, one query of the SQL store for the drift history; the rows are built by
pure functions from those."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from market_mlops.config import PipelineConfig
from market_mlops.registry.aliases import CHALLENGER, CHAMPION
from market_mlops.registry.store import model_name

BAND_ORDER = {"emergency": 0, "drift": 1, "monitor": 2, "normal": 3, None: 4}
SORT_KEYS = ("attention", "model", "skill", "accuracy", "age")


@dataclass(frozen=True)
class VersionInfo:
    model: str
    version: str
    created: dt.datetime
    aliases: tuple[str, ...]
    tags: dict[str, str]
    run_id: str


@dataclass(frozen=True)
class ModelRow:
    model: str
    symbol: str
    timeframe: str
    horizon: int | None  # bars ahead; None: the timeframe's main horizon (a model named without -hN)
    champion: VersionInfo | None
    challenger: VersionInfo | None
    latest: VersionInfo | None  # the last version registered (a retrain or a refresh) and its gate decision
    versions: int
    band: str | None  # the last drift check's band
    delta_points: float | None
    realized_trend: list[float] = field(default_factory=list)
    features_drifted: int | None = None
    in_cooldown: bool = False
    last_check: str | None = None
    drift_run_id: str | None = None
    shadow: dict[str, Any] | None = None  # the last check's live record of the shadow challenger
    outcomes: float | None = None  # separate outcomes the last check's band was judged on
    band_reason: str = ""  # why that band ("too few to judge" when nothing could be)
    outcomes_needed: float | None = None  # set when the last check had too few outcomes to judge

    @property
    def too_few(self) -> bool:
        """The last check could not judge the band (too few outcomes for its detector): "normal" means nothing."""
        return self.outcomes_needed is not None or "too few" in self.band_reason \
            or "no resolved forecast" in self.band_reason

    @property
    def label(self) -> str:
        """`AAPL d1`, `AAPL d1 h20`: how pages name the model."""
        return f"{self.symbol} {self.timeframe}" + (f" h{self.horizon}" if self.horizon is not None else "")

    @property
    def flag(self) -> str:
        """What needs a person: no model, a challenger waiting without a champion, no champion at all, or a baseline
        serving because no model has beaten it yet."""
        if self.versions == 0:
            return "not trained"
        if self.champion is None:
            return "no champion" + (" (challenger waiting)" if self.challenger is not None else "")
        if self.champion.tags.get("kind") == "baseline":
            return "baseline: no model has beaten it yet"
        return ""

    def gate(self, key: str, version: VersionInfo | None = None) -> float | None:
        value = (version or self.champion or self.latest or _NO_VERSION).tags.get(f"gate.{key}")
        try:
            return float(value) if value not in (None, "", "None") else None
        except ValueError:
            return None


_NO_VERSION = VersionInfo("", "", dt.datetime.min.replace(tzinfo=dt.UTC), (), {}, "")


def parse_model_name(name: str) -> tuple[str, str, int | None] | None:
    """(symbol, timeframe, horizon or None) of `AAPL-d1-direction` / `AAPL-d1-h20-direction`; None for another name.
    A timeframe is lower-case and a ticker upper-case, so `BRK-B-h1-direction` is BRK-B on h1, not BRK on "B"."""
    if not name.endswith("-direction") or name.count("-") < 2:
        return None
    stem = name.removesuffix("-direction")
    head, last = stem.rsplit("-", 1)
    if last.startswith("h") and last[1:].isdigit() and "-" in head:
        symbol, timeframe = head.rsplit("-", 1)
        if timeframe.isalnum() and timeframe == timeframe.lower() and not timeframe.isdigit():
            return symbol, timeframe, int(last[1:])
    return head, last, None


def model_rows(keys: Iterable[tuple[str, str, int | None]], versions: Iterable[VersionInfo],
               checks: Iterable[dict[str, Any]], trend: int = 12, cfg: PipelineConfig | None = None) -> list[ModelRow]:
    """One row per model (symbol, timeframe, horizon): the configured ones, and any other the registry holds."""
    by_model: dict[str, list[VersionInfo]] = {}
    for v in versions:
        by_model.setdefault(v.model, []).append(v)
    history: dict[str, list[dict[str, Any]]] = {}
    for record in sorted(checks, key=lambda r: str(r.get("interval_end", ""))):
        history.setdefault(str(record.get("model")), []).append(record)
    names = {model_name(s, t, h, cfg): (s, t, h) for s, t, h in keys}
    for name in by_model:
        parsed = parse_model_name(name)
        if name not in names and parsed is not None:
            names[name] = parsed
    rows = []
    for name, (symbol, timeframe, horizon) in names.items():
        main = horizon is None or (cfg is not None and timeframe in cfg.timeframes
                                   and horizon == cfg.main_horizon(timeframe))
        mine = sorted(by_model.get(name, []), key=lambda v: int(v.version))
        checked = history.get(name, [])
        last = checked[-1] if checked else {}
        rows.append(ModelRow(
            model=name, symbol=symbol, timeframe=timeframe, horizon=None if main else horizon,
            champion=next((v for v in mine if CHAMPION in v.aliases), None),
            challenger=next((v for v in mine if CHALLENGER in v.aliases), None),
            latest=mine[-1] if mine else None, versions=len(mine),
            band=last.get("band"), delta_points=_number(last.get("delta_points")),
            realized_trend=[x for x in (_number(r.get("realized_accuracy")) for r in checked[-trend:]) if x is not None],
            features_drifted=last.get("features_drifted"), in_cooldown=bool(last.get("in_cooldown")),
            last_check=last.get("interval_end"), drift_run_id=last.get("mlflow_run_id"), shadow=last.get("shadow"),
            outcomes=_number(last.get("outcomes")), band_reason=str(last.get("band_reason") or ""),
            outcomes_needed=_number(last.get("outcomes_needed"))))
    return rows


def sort_and_filter(rows: list[ModelRow], sort: str = "attention", band: str | None = None) -> list[ModelRow]:
    """`attention`: flagged models first, then the worst band, then the largest accuracy drop."""
    if band:
        rows = [r for r in rows if (r.band or "none") == band]
    keys = {
        "attention": lambda r: (r.flag == "", BAND_ORDER.get(r.band, 4), r.delta_points or 0.0, r.model),
        "model": lambda r: (r.model,),
        "accuracy": lambda r: (-(r.gate("challenger_accuracy") or 0.0), r.model),
        "skill": lambda r: (-(r.gate("skill_mean") or -1.0), r.model),
        "age": lambda r: (r.champion.created if r.champion else dt.datetime.max.replace(tzinfo=dt.UTC), r.model),
    }
    return sorted(rows, key=keys.get(sort, keys["attention"]))


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None  # NaN: not measured


def registry_versions(cfg: PipelineConfig, model: str | None = None) -> list[VersionInfo]:
    """Every version of the suite's models (or of one), with aliases and tags: one paged search of the registered
    models (a version found by search carries no aliases) and one of the versions, 1,000 per page."""
    from market_mlops.registry import store

    c = store.client(cfg)
    query = f"name = '{model}'" if model else "name LIKE '%-direction'"
    aliases: dict[tuple[str, str], list[str]] = {}
    token = None
    while True:
        models = c.search_registered_models(filter_string=query, max_results=1000, page_token=token)
        for m in models:
            for alias, version in (m.aliases or {}).items():
                aliases.setdefault((m.name, str(version)), []).append(alias)
        token = models.token
        if not token:
            break
    out: list[VersionInfo] = []
    while True:
        page = c.search_model_versions(filter_string=query, max_results=1000, page_token=token)
        out += [VersionInfo(model=v.name, version=str(v.version),
                            created=dt.datetime.fromtimestamp(v.creation_timestamp / 1000, dt.UTC),
                            aliases=tuple(sorted(aliases.get((v.name, str(v.version)), []))), tags=dict(v.tags or {}),
                            run_id=str(v.run_id))
                for v in page]
        token = page.token
        if not token:
            return out


def fleet(cfg: PipelineConfig, model: str | None = None) -> list[ModelRow]:
    """The rows of the Models page (or of one model): the registry and the SQL store, one read each."""
    from market_mlops.monitoring.history import drift_history

    return model_rows(cfg.model_keys() if model is None else [], registry_versions(cfg, model),
                      drift_history(cfg, model), cfg=cfg)
