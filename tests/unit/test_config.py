from __future__ import annotations

import os
import subprocess
import sys

import pytest

from market_mlops.config import DEFAULT_CONFIG_FILE, REPO_ROOT, ConfigError, load_config


def test_repository_config_loads_and_resolves_paths(tmp_path):
    cfg = load_config(environ={"MLOPS_HOME": str(tmp_path)})
    assert cfg.universe.benchmark in cfg.universe.symbols
    assert cfg.data_root == tmp_path / "data"
    assert cfg.mlflow_tracking_uri == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert set(cfg.universe.timeframes) <= set(cfg.timeframes)


def test_environment_overrides_nested_keys_and_lists(tmp_path):
    cfg = load_config(environ={
        "MLOPS_HOME": str(tmp_path),
        "MLOPS__STORAGE__DVC_REMOTE_URL": "s3://mlops-data/dvc",
        "MLOPS__STORAGE__S3_ENDPOINT_URL": "http://minio:9000",
        "MLOPS__UNIVERSE__SYMBOLS": "SPY,QQQ",
        "MLOPS__DRIFT__MIN_OUTCOMES": "7",
        "MLOPS__TIMEFRAMES__H1__LABELS__BAND": "fixed",
    })
    assert cfg.dvc_remote_url == "s3://mlops-data/dvc"
    assert cfg.storage.s3_endpoint_url == "http://minio:9000"
    assert cfg.universe.symbols == ["SPY", "QQQ"]
    assert cfg.drift.min_outcomes == 7
    assert cfg.spec("h1").labels.band == "fixed" and cfg.spec("h1").labels.threshold == 0.004  # the rest kept


@pytest.mark.parametrize(("env", "key", "hint"), [
    ({"MLOPS__TIMEFRAMES__D1__HORIZONS": "0"}, "timeframes.d1.horizons", "outside 1..500"),
    ({"MLOPS__TIMEFRAMES__D1__HORIZONS": "5,1,5"}, "timeframes.d1.horizons", "twice"),
    ({"MLOPS__UNIVERSE__TIMEFRAMES": "d1,w1"}, "universe", "timeframes ['w1'] have no entry"),
    ({"MLOPS__UNIVERSE__BENCHMARK": "qqq"}, "universe.benchmark", "upper-case ticker"),
    ({"MLOPS__DRIFT__EMERGENCY_BELOW": "-10"}, "drift", "monitor_below > drift_below > emergency_below"),
    ({"MLOPS__STORAGE__S3_ENDPOINT_URL": "minio:9000"}, "storage.s3_endpoint_url", "http://"),
    ({"MLOPS__TRAINING__FOLDZ": "3"}, "training.foldz", "unknown key"),
    ({"MLOPS__UNIVERSE__SYMBOLS": "spy"}, "universe.symbols", "upper-case ticker"),
])
def test_a_bad_value_fails_with_one_line_naming_the_key(env, key, hint):
    with pytest.raises(ConfigError) as err:
        load_config(environ=env)
    message = str(err.value)
    assert "\n" not in message
    assert f"config key '{key}'" in message
    assert hint in message


def test_unknown_symbol_in_a_run_is_refused(tmp_path):
    cfg = load_config(environ={"MLOPS_HOME": str(tmp_path)})
    with pytest.raises(ConfigError, match="unknown symbol"):
        cfg.pairs(["NOPE"], None)


def test_cli_prints_one_line_and_exits_2_on_bad_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("universe: {benchmark: SPY, symbols: [SPY], timeframes: [d1]}\ntimeframes: {d1: {minutes: 1440, bars_per_year: 252, "
                   "warmup_days: 420, refresh_window: 250, refresh_lookback_days: 400, partition: year, horizon: -3}}\n")
    user_env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS__")}  # not the session's pins
    out = subprocess.run([sys.executable, "-m", "market_mlops.cli", "config", "check", "--file", str(bad)],
                         capture_output=True, text=True, env=user_env)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "timeframes.d1.horizon" in out.stderr and "Traceback" not in out.stderr


def test_the_benchmark_is_optional_and_may_sit_outside_the_universe(tmp_path):
    cfg = load_config(environ={"MLOPS_HOME": str(tmp_path), "MLOPS__UNIVERSE__SYMBOLS": "AAPL,MSFT",
                               "MLOPS__UNIVERSE__BENCHMARK": "SPY"})
    assert cfg.universe.data_symbols == ["AAPL", "MSFT", "SPY"]  # ingested for its features, never modelled
    assert ("SPY", "d1") in cfg.pairs(with_benchmark=True) and ("SPY", "d1") not in cfg.pairs()
    with pytest.raises(ConfigError, match="unknown symbol"):
        cfg.pairs(["SPY"])
    without = load_config(environ={"MLOPS_HOME": str(tmp_path), "MLOPS__UNIVERSE__BENCHMARK": ""})
    assert without.universe.benchmark is None and without.universe.data_symbols == without.universe.symbols
    # '' in a config file means the same as in the environment (the docs say so; it used to be refused there)
    own = tmp_path / "pipeline.yaml"
    own.write_text(DEFAULT_CONFIG_FILE.read_text().replace("benchmark: SPY", "benchmark: ''"))
    assert "benchmark: ''" in own.read_text()
    assert load_config(own, environ={"MLOPS_HOME": str(tmp_path)}).universe.benchmark is None


def test_universe_groups_give_pairs_calendars_and_label_settings_and_refuse_what_is_ambiguous(tmp_path):
    import yaml

    def universe(text: str, extra: dict | None = None):
        base = yaml.safe_load((REPO_ROOT / "config" / "pipeline.yaml").read_text())
        base["universe"] = yaml.safe_load(text)
        path = tmp_path / "pipeline.yaml"
        path.write_text(yaml.safe_dump(base))
        return load_config(path, environ={"MLOPS_HOME": str(tmp_path), **(extra or {})})

    cfg = universe("{benchmark: SPY, groups: [{name: stocks, symbols: [SPY, AAPL], timeframes: [d1, h1]},"
                   " {name: fx, calendar: FX, symbols: [EURUSD], timeframes: [h1], labels: {h1: {k: 0.5}}}]}")
    assert cfg.pairs() == [("SPY", "d1"), ("SPY", "h1"), ("AAPL", "d1"), ("AAPL", "h1"), ("EURUSD", "h1")]
    assert cfg.universe.timeframes == ["d1", "h1"] and cfg.universe.calendar_of("EURUSD") == "FX"
    assert cfg.pairs(["EURUSD"]) == [("EURUSD", "h1")]
    assert cfg.labels_of("EURUSD", "h1").k == 0.5 and cfg.labels_of("AAPL", "h1").k == 0.43
    with pytest.raises(ConfigError, match=r"symbols \['AAPL'\] are in more than one group"):
        universe("{groups: [{name: a, symbols: [AAPL], timeframes: [d1]}, {name: b, symbols: [AAPL], timeframes: [h1]}]}")
    with pytest.raises(ConfigError, match="give either groups or symbols, not both"):
        universe("{symbols: [AAPL], groups: [{name: a, symbols: [AAPL], timeframes: [d1]}]}")
    with pytest.raises(ConfigError, match="universe"):
        universe("{groups: [{name: a, symbols: [AAPL], timeframes: [d1], labels: {d1: {width: 3}}}]}")


def test_mlflow_files_go_where_a_tracking_server_keeps_them_and_stay_local_only_with_the_embedded_store(tmp_path):
    """A local artifact root under a tracking server would leave every run's files on the disk of the worker that
    logged them (the compose stack did, before the default changed): unset, the server decides."""
    home = {"MLOPS_HOME": str(tmp_path)}
    assert load_config(environ=home).mlflow_artifact_root == (tmp_path / "mlflow" / "artifacts").as_uri()
    server = {**home, "MLOPS__STORAGE__MLFLOW_TRACKING_URI": "http://mlflow:5000"}
    assert load_config(environ=server).mlflow_artifact_root is None
    chosen = {**server, "MLOPS__STORAGE__MLFLOW_ARTIFACT_ROOT": "s3://mlflow/elsewhere"}
    assert load_config(environ=chosen).mlflow_artifact_root == "s3://mlflow/elsewhere"


def test_every_process_on_a_home_reads_the_settings_it_was_set_up_with(tmp_path, monkeypatch):
    """The demo records its landing source in MLOPS_HOME/settings.env: `make ui`'s DAG runs and `market-mlops` on
    that home read it (their own environment wins), so an ingestion triggered from the UI reads the landing folder."""
    from market_mlops.config import get_config, load_config, write_home_settings

    for key in [k for k in os.environ if k.startswith("MLOPS__")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    assert get_config().source.kind == "synthetic"
    write_home_settings(tmp_path, {"MLOPS__SOURCE__KIND": "landing", "PATH": "/bin"})
    assert (tmp_path / "settings.env").read_text().splitlines()[-1] == "MLOPS__SOURCE__KIND=landing"
    assert get_config().source.kind == "landing" and load_config().source.kind == "landing"
    monkeypatch.setenv("MLOPS__SOURCE__KIND", "synthetic")  # the process's own environment wins
    assert get_config().source.kind == "synthetic"
    assert load_config(environ={}).source.kind == "synthetic"  # an explicit environment is all there is
