"""Several horizons per timeframe: one model each, named apart, the main horizon keeping the name it had."""

from __future__ import annotations

import pytest

from market_mlops.config import ConfigError, load_config
from market_mlops.registry.store import model_name
from market_mlops.tasks.universe import model_label, model_shards
from market_mlops.ui.fleet import model_rows, parse_model_name


@pytest.fixture
def defaults(tmp_path):
    """The repository's config as a user gets it (the test session pins one horizon; this reads the file)."""
    return load_config(environ={"MLOPS_HOME": str(tmp_path)})


def test_the_defaults_give_d1_and_h1_three_horizons_each(defaults):
    assert defaults.spec("d1").horizons == [5, 1, 20] and defaults.spec("h1").horizons == [6, 1, 24]
    keys = defaults.model_keys(["AAPL"], ["d1", "h1"])
    assert keys == [("AAPL", "d1", 5), ("AAPL", "d1", 1), ("AAPL", "d1", 20),
                    ("AAPL", "h1", 6), ("AAPL", "h1", 1), ("AAPL", "h1", 24)]
    assert defaults.model_keys(["AAPL"], ["d1"], [20]) == [("AAPL", "d1", 20)]
    with pytest.raises(ConfigError, match=r"unknown horizon\(s\) \[7\]"):
        defaults.model_keys(["AAPL"], ["d1"], [7])


def test_a_model_sees_its_own_horizon_and_the_main_one_keeps_its_name(defaults):
    assert defaults.spec("d1", 20).horizon == 20 and defaults.spec("d1").horizon == 5
    assert defaults.spec("d1", 20).bars_per_year == defaults.spec("d1").bars_per_year
    assert model_name("AAPL", "d1", 5, defaults) == model_name("AAPL", "d1", None, defaults) == "AAPL-d1-direction"
    assert model_name("AAPL", "d1", 20, defaults) == "AAPL-d1-h20-direction"
    assert parse_model_name("AAPL-d1-h20-direction") == ("AAPL", "d1", 20)
    assert parse_model_name("BRK-B-d1-direction") == ("BRK-B", "d1", None)
    assert parse_model_name("BRK-B-d1-h1-direction") == ("BRK-B", "d1", 1)
    assert parse_model_name("BRK-B-h1-direction") == ("BRK-B", "h1", None)  # a dashed ticker on h1, its main horizon
    assert parse_model_name("BRK-B-h1-h24-direction") == ("BRK-B", "h1", 24)
    assert model_label({"symbol": "AAPL", "timeframe": "d1", "horizon": 1}, defaults) == "AAPL d1 h1"
    assert model_label({"symbol": "AAPL", "timeframe": "d1", "horizon": 5}, defaults) == "AAPL d1"


def test_shards_and_pages_carry_every_horizon(defaults):
    shards = model_shards(["AAPL", "MSFT"], ["d1"], defaults)
    models = [m for s in shards for m in s["models"]]
    assert [(m["symbol"], m["horizon"]) for m in models] == [("AAPL", 5), ("AAPL", 1), ("AAPL", 20),
                                                             ("MSFT", 5), ("MSFT", 1), ("MSFT", 20)]
    rows = {r.model: r for r in model_rows(defaults.model_keys(["AAPL"], ["d1"]), [], [], cfg=defaults)}
    assert sorted(rows) == ["AAPL-d1-direction", "AAPL-d1-h1-direction", "AAPL-d1-h20-direction"]
    assert rows["AAPL-d1-h20-direction"].label == "AAPL d1 h20" and rows["AAPL-d1-direction"].label == "AAPL d1"


def test_one_horizon_is_a_list_of_one(tmp_path):
    cfg = load_config(environ={"MLOPS_HOME": str(tmp_path), "MLOPS__TIMEFRAMES__D1__HORIZONS": "5"})
    assert cfg.spec("d1").horizons == [5] and cfg.model_keys(["SPY"], ["d1"]) == [("SPY", "d1", 5)]


def test_a_variable_replaces_the_files_horizons(tmp_path):
    old_style = load_config(environ={"MLOPS_HOME": str(tmp_path), "MLOPS__TIMEFRAMES__D1__HORIZON": "3"})
    assert old_style.spec("d1").horizons == [3]
    both = tmp_path / "both.yaml"
    both.write_text("universe: {symbols: [SPY], timeframes: [d1]}\ntimeframes: {d1: {minutes: 1440, bars_per_year: 252, "
                    "warmup_days: 420, refresh_window: 250, refresh_lookback_days: 400, partition: year, horizon: 5, "
                    "horizons: [5, 1]}}\n")
    with pytest.raises(ConfigError, match="give horizons .a list. or horizon, not both"):
        load_config(both, environ={"MLOPS_HOME": str(tmp_path)})
