"""Which models a run works on: the configured universe narrowed by a run's params, and the champions among them."""

from __future__ import annotations

from market_mlops.config import PipelineConfig, get_config
from market_mlops.contracts import ChampionRef, ModelKey
from market_mlops.registry import versions


def models(symbols: list[str] | None = None, timeframes: list[str] | None = None,
           cfg: PipelineConfig | None = None) -> list[ModelKey]:
    """Every (symbol, timeframe) of the universe, or those named; an unknown name is a `ConfigError`."""
    return [{"symbol": s, "timeframe": t} for s, t in (cfg or get_config()).pairs(symbols, timeframes)]


def champions(symbols: list[str] | None = None, timeframes: list[str] | None = None,
              cfg: PipelineConfig | None = None) -> list[ChampionRef]:
    """The models among those whose registered model has a champion (one registry search for all of them).
    The registry being down fails the task: it never reads as "no champions, nothing to do"."""
    cfg = cfg or get_config()
    found = versions.champion_versions(cfg.pairs(symbols, timeframes), cfg)
    return [{"symbol": s, "timeframe": t, "version": v} for (s, t), v in found.items()]
