"""`market-mlops import` with vendor-shaped files, as a user with their own history runs it: per-ticker daily CSVs
with `Adj Close` (one stock listed years after the others) and an hourly FX file with Sunday-evening bars."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from market_mlops.data.synthetic import GeneratorSpec, generate_bars
from market_mlops.dev.vendor_files import write_daily_csv, write_intraday_csv
from tests.files import parquet_digests

from .conftest import market_mlops

pytestmark = pytest.mark.e2e
SPEC = GeneratorSpec(seed=3, benchmark=None)


@pytest.fixture
def own_data(mlops_home, monkeypatch):
    monkeypatch.setenv("MLOPS__UNIVERSE__SYMBOLS", "AAPL,MSFT,NEWCO,EURUSD")
    monkeypatch.setenv("MLOPS__UNIVERSE__BENCHMARK", "")
    monkeypatch.setenv("MLOPS__UNIVERSE__CALENDARS", "{EURUSD: FX}")
    vendor = mlops_home / "vendor"
    stocks = generate_bars(SPEC, ["AAPL", "MSFT"], "d1", dt.date(2019, 1, 2), dt.date(2020, 6, 30))
    for symbol in ("AAPL", "MSFT"):
        write_daily_csv(stocks[stocks["symbol"] == symbol], vendor / f"{symbol}.csv")
    write_daily_csv(generate_bars(SPEC, ["NEWCO"], "d1", dt.date(2020, 3, 2), dt.date(2020, 6, 30)), vendor / "NEWCO.csv")
    fx = generate_bars(GeneratorSpec(seed=3, benchmark=None, exchange="FX"), ["EURUSD"], "h1", dt.date(2020, 5, 4),
                       dt.date(2020, 6, 30))
    write_intraday_csv(fx, vendor / "EURUSD_h1.csv")
    return mlops_home, vendor


def _dataset(home: Path) -> Path:
    return home / "data" / "dataset"


def test_vendor_files_land_as_written_and_a_second_import_changes_nothing(own_data):
    from market_mlops.data.dataset import load_bars

    home, vendor = own_data
    out = market_mlops("import", str(vendor))
    assert out.returncode == 0, out.stderr[-2000:]
    table = out.stdout
    assert "NEWCO      d1   2020-03-02" in table and "EURUSD     h1   2020-05-03 21:00" in table  # Sunday 17:00 New York
    for symbol in ("AAPL", "MSFT", "NEWCO"):
        written = pd.read_csv(vendor / f"{symbol}.csv")
        stored = load_bars(_dataset(home), "d1", [symbol])
        assert stored["ts"].dt.strftime("%Y-%m-%d").tolist() == written["Date"].tolist()
        assert stored["close"].tolist() == written["Close"].tolist() and stored["volume"].tolist() == written["Volume"].tolist()
    fx = load_bars(_dataset(home), "h1", ["EURUSD"])
    assert len(fx) == len(pd.read_csv(vendor / "EURUSD_h1.csv")) and (fx["ts"].dt.day_of_week == 6).any()

    before = parquet_digests(_dataset(home))
    from market_mlops.config import get_config
    from market_mlops.data.versioning import version_history

    versions = version_history(get_config())
    out = market_mlops("import", str(vendor))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "rows new to the dataset: AAPL 0, EURUSD 0, MSFT 0, NEWCO 0" in out.stdout
    assert parquet_digests(_dataset(home)) == before
    # The same folder again: the same bytes, so no data version is logged and the head does not move.
    assert f"data version {versions[-1]['md5']} unchanged: the dataset already held every bar" in out.stdout
    assert version_history(get_config()) == versions


def test_calendar_features_of_a_date_only_daily_file_are_those_of_its_session_dates(own_data):
    """A vendor's date-only daily bar is stored at 00:00 UTC (the previous evening in New York): its features must
    read Monday's bar as Monday and the 1st of a month as that month."""
    import numpy as np

    from market_mlops.data.dataset import load_bars
    from market_mlops.model.features import build_features

    home, vendor = own_data
    assert market_mlops("import", str(vendor)).returncode == 0
    stored = load_bars(_dataset(home), "d1", ["AAPL"])
    assert (stored["ts"].dt.hour == 0).all()  # date-only: midnight UTC
    feats = build_features(stored, 252)
    dates = pd.to_datetime(pd.read_csv(vendor / "AAPL.csv")["Date"])
    weekday = np.round(np.angle(feats["dow_cos"] + 1j * feats["dow_sin"]) / (2 * np.pi) * 5) % 5
    assert (np.asarray(weekday) == dates.dt.dayofweek.to_numpy()).all()
    assert set(dates.dt.dayofweek) == {0, 1, 2, 3, 4}
    month = np.round(np.angle(feats["month_cos"] + 1j * feats["month_sin"]) / (2 * np.pi) * 12) % 12
    assert (np.asarray(month) == dates.dt.month.to_numpy() - 1).all()
    day = np.round(np.angle(feats["dom_cos"] + 1j * feats["dom_sin"]) / (2 * np.pi) * 31) % 31
    assert (np.asarray(day) == dates.dt.day.to_numpy() - 1).all()


def test_histories_that_end_on_different_dates_import_in_one_call_and_each_ends_on_its_own(own_data, monkeypatch):
    """A stock delisted (or downloaded earlier) beside live ones: owed nothing after its own last bar, said in one
    line, the import goes on; sessions missing inside a file are still refused (the next test). The same folder
    again changes nothing."""
    home, vendor = own_data
    msft = pd.read_csv(vendor / "MSFT.csv")
    msft[msft["Date"] <= "2020-03-02"].to_csv(vendor / "MSFT.csv", index=False)  # its data end 2 March 2020
    out = market_mlops("import", str(vendor))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    ended = [line for line in out.stdout.splitlines() if line.startswith("ended: ")]
    assert ended == ["ended: MSFT d1 ends 2020-03-02: its data stop 84 session(s) before the batch's last, 2020-06-30 "
                     "(owed nothing after; a retrain after it names it)"], out.stdout
    assert "MSFT       d1   2019-01-02 00:00  2020-03-02 00:00" in out.stdout
    assert [line.split()[-1] for line in out.stdout.splitlines() if line.startswith(("AAPL ", "MSFT "))] == ["0", "0"]
    again = market_mlops("import", str(vendor))
    assert again.returncode == 0 and "unchanged" in again.stdout, again.stdout[-2000:] + again.stderr[-2000:]
    # One retrain after MSFT's end covers both: MSFT is skipped in one line, AAPL trains, the run succeeds (AAPL's
    # 18 months hold ~170 labelled rows: 2 folds of 100, fewer than the defaults ask for).
    monkeypatch.setenv("MLOPS__TRAINING__FOLDS", "2")
    monkeypatch.setenv("MLOPS__TRAINING__MIN_TRAIN_ROWS", "100")
    out = market_mlops("run", "model_retrain", "--date", "2020-07-01",
                       "--conf", '{"symbols": ["AAPL", "MSFT"], "timeframes": ["d1"]}')
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("model_retrain 2020-07-01: success in "), lines  # Airflow's own chatter goes to the log
    assert [line.split(" skipped: ")[1] for line in lines if line.startswith("  MSFT-d1-direction")] == [
        "data end 2020-03-02, before this cutoff; no champion yet (MSFT d1's data end 2020-03-02, before this cutoff "
        "(its bars must reach 2020-06-27 21:00 UTC (the last session close minus the allowed lag)): the series ended "
        "or its vendor is late; import its later sessions (market-mlops import, or backfill market_data_ingestion "
        "from 2020-03-02) and rerun, or retrain the other series only (model_retrain's symbols))"], lines
    aapl = [line for line in lines if line.startswith("  AAPL-d1-direction")]
    assert len(aapl) == 1 and " skipped: " not in aapl[0], lines
    # All of AAPL's stored bars are within training.history_years (8): the line says where it learned from, no cut.
    assert re.search(r"; learned rows from 2019-\d\d-\d\d$", aapl[0]), aapl[0]


def test_missing_sessions_are_named_by_symbol_date_and_file(own_data):
    home, vendor = own_data
    out = market_mlops("import", str(vendor))
    assert out.returncode == 0, out.stderr[-2000:]
    before = parquet_digests(_dataset(home))
    lines = (vendor / "MSFT.csv").read_text().splitlines()
    holed = home / "resend" / "MSFT.csv"
    holed.parent.mkdir()
    holed.write_text("\n".join(lines[:99] + lines[102:]) + "\n")  # three sessions of May 2019 left out
    out = market_mlops("import", str(holed))
    assert out.returncode == 1, out.stdout[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1  # one line says what is wrong, where, and that nothing was merged
    error = errors[0]
    assert "MSFT d1: 3 session(s) missing: 2019-05-23, 2019-05-24, 2019-05-28 (MSFT.csv)" in error, error
    assert parquet_digests(_dataset(home)) == before  # nothing merged


def test_a_weekend_daily_bar_is_refused_whatever_the_tolerance(own_data, monkeypatch):
    home, vendor = own_data
    monkeypatch.setenv("MLOPS__VALIDATION__MAX_MISSING_SESSIONS", "100000")
    weekend = home / "weekend" / "AAPL.csv"
    weekend.parent.mkdir()
    text = (vendor / "AAPL.csv").read_text()
    last_close = text.strip().splitlines()[-1].split(",")[4]
    weekend.write_text(text + f"2020-07-04,{last_close},{last_close},{last_close},{last_close},1000,{last_close}\n")
    out = market_mlops("import", str(weekend))
    assert out.returncode == 1, out.stdout[-2000:]
    assert "bar_on_a_session (1 rows)" in out.stderr
    assert not _dataset(home).exists()


def test_fx_ticks_after_the_friday_close_are_refused_naming_the_option_then_dropped_and_listed_with_it(own_data):
    """A real FX vendor file: two 1-tick, volume-1 bars after the Friday close. Refused, with the option that lets the
    rest in; with it, the file imports and each dropped bar is listed."""
    home, vendor = own_data
    rows = (vendor / "EURUSD_h1.csv").read_text().splitlines()
    header, body = rows[0], rows[1:]
    closing = next(i for i, row in enumerate(body) if row.startswith("2020-06-26T20:00"))  # Friday's last hour
    last = body[closing].split(",")
    ticks = [f"2020-06-26T{hour}:00:00+00:00,{','.join(last[1:5])},1" for hour in (21, 22)]  # after 17:00 New York
    late = home / "late" / "EURUSD_h1.csv"
    late.parent.mkdir()
    late.write_text("\n".join([header, *body[:closing + 1], *ticks, *body[closing + 1:]]) + "\n")
    out = market_mlops("import", str(late))
    assert out.returncode == 1, out.stdout[-2000:]
    error = next(line for line in out.stderr.splitlines() if line.startswith("error: "))
    assert "bar_on_a_session (2 rows)" in error and "--drop-off-session" in error, error
    assert not _dataset(home).exists()
    out = market_mlops("import", str(late), "--drop-off-session")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "dropped 2 bar(s) outside their calendar's sessions (--drop-off-session):" in out.stdout, out.stdout
    for tick in ticks:
        assert f"EURUSD_h1.csv: EURUSD h1 bar at {tick[:10]} {tick[11:16]} UTC" in out.stdout, out.stdout
    assert "EURUSD     h1   " in out.stdout and len(body) == int(out.stdout.split("EURUSD     h1")[1].split()[4])


def test_the_timeframe_comes_from_the_bar_spacing_or_a_clear_refusal(own_data):
    home, vendor = own_data
    hourly = home / "named" / "XYZ.csv"  # no timeframe in the name, hourly bars: h1 from the spacing
    hourly.parent.mkdir()
    hourly.write_text((vendor / "EURUSD_h1.csv").read_text())
    out = market_mlops("import", str(hourly), "--symbol", "EURUSD")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "EURUSD     h1" in out.stdout
    odd = home / "odd" / "EURUSD.csv"  # 30-minute bars: no configured timeframe has them
    odd.parent.mkdir()
    stamps = pd.date_range("2020-06-01 01:00", periods=40, freq="30min", tz="UTC")
    pd.DataFrame({"Datetime": stamps.strftime("%Y-%m-%dT%H:%M:%S+00:00"), "Open": 1.1, "High": 1.2, "Low": 1.0,
                  "Close": 1.1, "Volume": 5}).to_csv(odd, index=False)
    out = market_mlops("import", str(odd))
    assert out.returncode == 1, out.stdout[-2000:]
    error = out.stderr
    assert "timeframe_known" in error and "30 minutes apart match no configured timeframe" in error


@pytest.mark.training
def test_your_own_data_from_files_to_a_champion_and_a_drift_check(mlops_home, monkeypatch):
    """The README's "Your own data" commands, in order: import, retrain, drift check (no scheduler)."""
    for key, value in {"RF_ESTIMATORS": 40, "BOOST_ROUNDS": 60, "FOLDS": 3, "HISTORY_YEARS": 6,
                       "MIN_TRAIN_ROWS": 200, "BOOTSTRAP_SAMPLES": 100}.items():
        monkeypatch.setenv(f"MLOPS__TRAINING__{key}", str(value))
    monkeypatch.setenv("MLOPS__UNIVERSE__SYMBOLS", "AAPL,NEWCO")
    monkeypatch.setenv("MLOPS__UNIVERSE__BENCHMARK", "SPY")  # an index the user does not trade
    monkeypatch.setenv("MLOPS__UNIVERSE__TIMEFRAMES", "d1")
    spec = GeneratorSpec(seed=5, benchmark="SPY", signal_strength=0.3)
    vendor = mlops_home / "vendor"
    bars = generate_bars(spec, ["SPY", "AAPL"], "d1", dt.date(2018, 1, 2), dt.date(2020, 9, 30))
    for symbol in ("SPY", "AAPL"):
        write_daily_csv(bars[bars["symbol"] == symbol], vendor / f"{symbol}.csv")
    write_daily_csv(generate_bars(spec, ["NEWCO"], "d1", dt.date(2019, 6, 3), dt.date(2020, 9, 30)), vendor / "NEWCO.csv")

    out = market_mlops("import", str(vendor))
    assert out.returncode == 0, out.stderr[-2000:]
    out = market_mlops("run", "model_retrain", "--date", "2020-09-01",
                       "--conf", '{"symbols": ["AAPL"], "force_promotion": true}')
    assert out.returncode == 0, out.stderr[-2000:]
    models = market_mlops("models")
    assert "AAPL-d1-direction      v1 model" in models.stdout and "vs the " in models.stdout, models.stdout
    short = market_mlops("run", "model_retrain", "--date", "2020-09-01", "--conf", '{"symbols": ["NEWCO"]}')
    assert short.returncode == 1 and "NEWCO d1: " in short.stderr and "too few" in short.stderr  # one line: why
    assert "retrain_model failed (try 1 of 2): ShardFailed: " in short.stderr, short.stderr
    assert short.stderr.rstrip().endswith("| what to do: fix what each model's error names; clearing the task (or "
                                          "Airflow's retry) redoes only the models that failed"), short.stderr
    out = market_mlops("run", "drift_check", "--date", "2020-09-30")
    assert out.returncode == 0, out.stderr[-2000:]
    # What the user reads: no raw Python warning (starlette's httpx notice, "Mean of empty slice"), issue 47
    assert "Warning" not in out.stdout + out.stderr, out.stdout + out.stderr
    from market_mlops.monitoring.history import drift_history

    checks = drift_history()
    assert [(c["model"], c["interval_end"][:10]) for c in checks] == [("AAPL-d1-direction", "2020-09-30")]
    assert checks[0]["forecasts_scored"] > 15  # the bars of September after the cutoff


def _error_line(out: subprocess.CompletedProcess) -> str:
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert out.returncode == 1 and len(errors) == 1, out.stdout[-2000:] + out.stderr[-2000:]
    return errors[0]


def test_a_bad_cell_is_named_and_not_also_a_restatement_or_a_split(own_data):
    home, vendor = own_data
    assert market_mlops("import", str(vendor)).returncode == 0
    rows = (vendor / "AAPL.csv").read_text().splitlines()
    cells = rows[200].split(",")
    cells[4] = "n/a"  # one Close
    bad = home / "resend" / "AAPL.csv"
    bad.parent.mkdir()
    bad.write_text("\n".join([*rows[:200], ",".join(cells), *rows[201:]]) + "\n")
    error = _error_line(market_mlops("import", str(bad)))
    assert error.startswith("error: validation failed for 1 of 1 file(s): AAPL.csv: close_not_null (1 rows) ["), error
    assert f"{cells[0]}" in error
    for phantom in ("restatement", "split", "allow_restatement", "<stored history>"):
        assert phantom not in error, error


def test_duplicated_rows_are_named_and_not_also_a_restatement(own_data):
    home, vendor = own_data
    assert market_mlops("import", str(vendor)).returncode == 0
    rows = (vendor / "MSFT.csv").read_text().splitlines()
    bad = home / "resend" / "MSFT.csv"
    bad.parent.mkdir()
    bad.write_text("\n".join([*rows, *rows[-5:]]) + "\n")  # the last five sessions sent twice
    error = _error_line(market_mlops("import", str(bad)))
    assert error.startswith("error: validation failed for 1 of 1 file(s): MSFT.csv: ts_unique ("), error
    for phantom in ("restatement", "would change", "allow_restatement", "<stored history>"):
        assert phantom not in error, error


def test_a_refused_file_does_not_make_the_others_miss_sessions(own_data):
    """The stocks end in June 2020; an FX file refused for its after-close ticks runs to 2020-09: the stocks are
    not judged over the FX file's months."""
    home, vendor = own_data
    folder = home / "mixed"
    folder.mkdir()
    for name in ("AAPL.csv", "MSFT.csv"):
        (folder / name).write_text((vendor / name).read_text())
    fx = generate_bars(GeneratorSpec(seed=3, benchmark=None, exchange="FX"), ["EURUSD"], "h1", dt.date(2020, 5, 4),
                       dt.date(2020, 9, 30))
    write_intraday_csv(fx, folder / "EURUSD_h1.csv")
    rows = (folder / "EURUSD_h1.csv").read_text().splitlines()
    closing = next(i for i, row in enumerate(rows) if row.startswith("2020-08-28T20:00"))
    tick = rows[closing].split(",")
    tick[0], tick[-1] = "2020-08-28T22:00:00+00:00", "1"
    (folder / "EURUSD_h1.csv").write_text("\n".join([*rows[:closing + 1], ",".join(tick), *rows[closing + 1:]]) + "\n")
    error = _error_line(market_mlops("import", str(folder)))
    assert error.startswith("error: validation failed for 1 of 3 file(s): EURUSD_h1.csv: bar_on_a_session (1 rows)"), error
    assert "session(s) missing" not in error and "AAPL" not in error and "MSFT" not in error, error


def test_partial_imports_the_files_that_pass_and_lists_the_ones_it_left_out(own_data):
    """--partial: the good files are merged, the bad one is left out (kept in the quarantine) and named with its
    problem; without it the same folder is refused whole."""
    from market_mlops.data.dataset import load_bars

    home, vendor = own_data
    folder = home / "partial"
    folder.mkdir()
    for name in ("AAPL.csv", "MSFT.csv"):
        (folder / name).write_text((vendor / name).read_text())
    rows = (vendor / "NEWCO.csv").read_text().splitlines()
    cells = rows[10].split(",")
    cells[4] = "n/a"
    (folder / "NEWCO.csv").write_text("\n".join([*rows[:10], ",".join(cells), *rows[11:]]) + "\n")
    error = _error_line(market_mlops("import", str(folder)))
    assert "NEWCO.csv: close_not_null (1 rows)" in error and not _dataset(home).exists()
    out = market_mlops("import", str(folder), "--partial")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused 1 file(s) (--partial: the files above were imported without them):" in out.stdout, out.stdout
    refused = out.stdout.split("imported without them):")[1].splitlines()[1]
    assert refused.strip().startswith("NEWCO.csv: close_not_null (1 rows)") and "quarantine" in refused, refused
    assert "AAPL       d1" in out.stdout and "MSFT       d1" in out.stdout and "NEWCO" not in out.stdout.split("refused")[0]
    assert set(load_bars(_dataset(home), "d1")["symbol"]) == {"AAPL", "MSFT"}


@pytest.mark.training
def test_a_stock_and_fx_universe_in_groups_imports_in_one_command_and_trains_exactly_its_pairs(mlops_home, monkeypatch):
    """Stocks at d1 and h1 on XNYS, EURUSD at h1 on the FX calendar, one home: one import of the vendor folder, one
    retrain, and the registry holds exactly the five configured pairs. An EURUSD d1 file is refused by name."""
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "pipeline.yaml").read_text())
    config["universe"] = yaml.safe_load("""
      benchmark: SPY
      groups:
        - {name: us-stocks, calendar: XNYS, symbols: [SPY, AAPL], timeframes: [d1, h1]}
        - {name: fx, calendar: FX, symbols: [EURUSD], timeframes: [h1], labels: {h1: {window: 480}}}
    """)
    (mlops_home / "pipeline.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("MLOPS_CONFIG", str(mlops_home / "pipeline.yaml"))  # a user's own config file, as in README
    for key, value in {"RF_ESTIMATORS": 30, "BOOST_ROUNDS": 40, "FOLDS": 3, "MIN_TRAIN_ROWS": 150,
                       "BOOTSTRAP_SAMPLES": 100}.items():  # small models: this test is about which pairs, not skill
        monkeypatch.setenv(f"MLOPS__TRAINING__{key}", str(value))
    from market_mlops.config import get_config

    cfg = get_config()
    assert cfg.pairs() == [("SPY", "d1"), ("SPY", "h1"), ("AAPL", "d1"), ("AAPL", "h1"), ("EURUSD", "h1")]
    assert cfg.universe.calendar_of("EURUSD") == "FX" and cfg.universe.schedule_calendar == "XNYS+FX"
    assert cfg.labels_of("EURUSD", "h1").window == 480 and cfg.labels_of("AAPL", "h1").window == 240
    vendor = mlops_home / "vendor"
    stocks = GeneratorSpec(seed=3, benchmark="SPY")
    daily = generate_bars(stocks, ["SPY", "AAPL"], "d1", dt.date(2018, 1, 2), dt.date(2020, 9, 30))
    hourly = generate_bars(stocks, ["SPY", "AAPL"], "h1", dt.date(2019, 10, 1), dt.date(2020, 9, 30))
    for symbol in ("SPY", "AAPL"):
        write_daily_csv(daily[daily["symbol"] == symbol], vendor / f"{symbol}.csv")
        write_intraday_csv(hourly[hourly["symbol"] == symbol], vendor / f"{symbol}_h1.csv")
    fx = GeneratorSpec(seed=3, benchmark=None, exchange="FX")
    write_intraday_csv(generate_bars(fx, ["EURUSD"], "h1", dt.date(2019, 10, 1), dt.date(2020, 9, 30)),
                       vendor / "EURUSD_h1.csv")
    daily_fx = mlops_home / "extra" / "EURUSD.csv"
    write_daily_csv(generate_bars(fx, ["EURUSD"], "d1", dt.date(2019, 10, 1), dt.date(2020, 9, 30)), daily_fx)
    error = _error_line(market_mlops("import", str(daily_fx)))
    assert "EURUSD d1 is not a configured pair (group fx: h1)" in error, error

    out = market_mlops("import", str(vendor))
    assert out.returncode == 0, out.stderr[-2000:]
    out = market_mlops("run", "model_retrain", "--date", "2020-09-01")
    assert out.returncode == 0, out.stderr[-3000:]
    from mlflow import MlflowClient

    registered = {m.name for m in MlflowClient(tracking_uri=f"sqlite:///{mlops_home}/mlflow/mlflow.db").search_registered_models()}
    assert registered == {"SPY-d1-direction", "SPY-h1-direction", "AAPL-d1-direction", "AAPL-h1-direction",
                          "EURUSD-h1-direction"}
    report, alerts = out.stdout.split("\n  alerts")
    assert report.count("-direction") == 5  # the run's report: one line per configured pair
    assert alerts.startswith((": none", " (")), alerts  # then what the run told people


def test_a_follow_up_file_repeating_a_stored_split_is_told_as_that_split_not_as_an_extreme_return(own_data):
    """The first import takes a 2:1 split out of MSFT's history (its Adj Close shows it); a later download without
    Adj Close, whose vendor adjusted the volumes but not the prices, repeats the split: it is said once as the split
    the stored history knows, its bars merge as stored, and nothing reads it as a market move or a restatement."""
    import numpy as np

    home, vendor = own_data
    traded = pd.read_csv(vendor / "MSFT.csv")
    before = traded["Date"] < "2020-02-18"
    for column in ("Open", "High", "Low", "Close"):
        traded.loc[before, column] = (traded.loc[before, column] * 2).round(4)
    adjusted_volume = traded["Volume"].copy()
    traded.loc[before, "Volume"] = (traded.loc[before, "Volume"] / 2).round()
    traded["Adj Close"] = (traded["Close"] * np.where(before, 0.5, 1.0)).round(4)
    first = vendor.parent / "first"
    first.mkdir()
    traded.to_csv(first / "MSFT.csv", index=False)
    out = market_mlops("import", str(first))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    split = "MSFT d1: 2:1 split on 2020-02-18 00:00"
    assert f"validation warning: MSFT.csv: corporate_action [{split} (prices before it adjusted)]" in out.stderr

    later = vendor.parent / "later"
    later.mkdir()
    recent = traded["Date"] >= "2020-01-02"
    traded.loc[recent].assign(Volume=adjusted_volume[recent]).drop(columns="Adj Close").to_csv(later / "MSFT.csv",
                                                                                                index=False)
    out = market_mlops("import", str(later))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    warnings = [line for line in out.stderr.splitlines() if line.startswith("validation warning")]
    assert warnings == [f"validation warning: MSFT.csv: corporate_action [{split} (known from the stored history; "
                        "prices before it adjusted)]"], out.stderr
    for phantom in ("return_not_extreme", "restatement", "continuity", "would change"):
        assert phantom not in out.stdout + out.stderr, phantom
