"""Which models a run works on: the configured universe narrowed by a run's params, the champions among them, and
the shards the per-model DAGs map over (one task per model in a small universe, groups of models in a large one)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TypeVar

from market_mlops.config import PipelineConfig, get_config
from market_mlops.contracts import ChampionRef, ChampionShard, ModelKey, ModelShard
from market_mlops.registry import versions

Keyed = TypeVar("Keyed", ModelKey, ChampionRef)


def models(symbols: list[str] | None = None, timeframes: list[str] | None = None,
           cfg: PipelineConfig | None = None, horizons: list[int] | None = None) -> list[ModelKey]:
    """Every (symbol, timeframe, horizon) of the universe, or those named; an unknown name is a `ConfigError`."""
    return [{"symbol": s, "timeframe": t, "horizon": h}
            for s, t, h in (cfg or get_config()).model_keys(symbols, timeframes, horizons)]


def champions(symbols: list[str] | None = None, timeframes: list[str] | None = None,
              cfg: PipelineConfig | None = None, horizons: list[int] | None = None) -> list[ChampionRef]:
    """The models among those whose registered model has a champion (one registry search for all of them).
    The registry being down fails the task: it never reads as "no champions, nothing to do"."""
    cfg = cfg or get_config()
    found = versions.champion_versions(cfg.model_keys(symbols, timeframes, horizons), cfg)
    return [{"symbol": s, "timeframe": t, "horizon": h, "version": v} for (s, t, h), v in found.items()]


def split_into_shards(items: Sequence[Keyed], size: int) -> list[list[Keyed]]:
    """Consecutive groups of at most `size`, as even as possible (1,028 models by 5: 204 shards of 5 and 2 of 4; 10 by 4: 4, 3,
    3), in the order given, so a shard holds neighbouring models and its label says which."""
    count = -(-len(items) // size) if items else 0
    bounds = [round(i * len(items) / count) for i in range(count + 1)] if count else [0]
    return [list(items[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


def model_label(key: ModelKey | ChampionRef, cfg: PipelineConfig | None = None) -> str:
    """How a model is named to people (logs, errors, map indexes): `AAPL d1` (its timeframe's main horizon),
    `AAPL d1 h20` (another)."""
    return describe_model(key["symbol"], key["timeframe"], key.get("horizon"), cfg)


def describe_model(symbol: str, timeframe: str, horizon: int | None, cfg: PipelineConfig | None = None) -> str:
    main = horizon is None or horizon == (cfg or get_config()).main_horizon(timeframe)
    return f"{symbol} {timeframe}" if main else f"{symbol} {timeframe} h{horizon}"


def shard_label(items: Sequence[ModelKey | ChampionRef], cfg: PipelineConfig | None = None) -> str:
    first, last = model_label(items[0], cfg), model_label(items[-1], cfg)
    return first if len(items) == 1 else f"{first} .. {last} ({len(items)} models)"


def model_shards(symbols: list[str] | None = None, timeframes: list[str] | None = None,
                 cfg: PipelineConfig | None = None, horizons: list[int] | None = None) -> list[ModelShard]:
    """The models of `models` in shards of `fleet.size_for` models."""
    cfg = cfg or get_config()
    keys = models(symbols, timeframes, cfg, horizons)
    return [{"label": shard_label(group, cfg), "models": group}
            for group in split_into_shards(keys, cfg.fleet.size_for(len(keys)))]


def champion_shards(symbols: list[str] | None = None, timeframes: list[str] | None = None,
                    cooldown_until: dt.datetime | None = None, cfg: PipelineConfig | None = None,
                    horizons: list[int] | None = None) -> list[ChampionShard]:
    """The champions in shards: one registry search for the universe and, with `cooldown_until` (a drift check's
    interval end), one query of the SQL store for every emergency retrain within the cooldown before it."""
    from market_mlops.monitoring.history import emergency_triggers_of_fleet
    from market_mlops.registry import store

    cfg = cfg or get_config()
    found = champions(symbols, timeframes, cfg, horizons)
    if cooldown_until is not None:
        triggers = emergency_triggers_of_fleet(cooldown_until - dt.timedelta(days=cfg.drift.cooldown_days),
                                               cooldown_until, cfg)
        for champion in found:
            times = triggers.get(store.model_name(champion["symbol"], champion["timeframe"], champion["horizon"], cfg),
                                 [])
            champion["emergency_triggers"] = [t.isoformat() for t in times]
    return [{"label": shard_label(group, cfg), "champions": group}
            for group in split_into_shards(found, cfg.fleet.size_for(len(found)))]
