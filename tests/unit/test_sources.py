from __future__ import annotations

import pandas as pd
import pytest

from market_mlops.data.bars import DTYPES
from market_mlops.data.sources import BadFile, LandingSource, RawFile, read_raw_file


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return RawFile(uri=str(path), name=name)


@pytest.mark.parametrize("header", [
    "Date,Open,High,Low,Close,Volume",
    "datetime,OPEN,HIGH,LOW,CLOSE,VOLUME",
    "timestamp,open,high,low,Adj Close,volume",
])
def test_usual_column_spellings_normalize_to_the_canonical_schema(tmp_path, header):
    raw = _write(tmp_path, "AAPL_d1.csv", f"{header}\n2024-11-26 14:30:00,10,11,9,10.5,1000\n")
    bars = read_raw_file(raw)
    assert list(bars.columns[:8]) == list(DTYPES)
    assert {c: str(bars[c].dtype) for c in DTYPES} == DTYPES
    assert bars.loc[0, "symbol"] == "AAPL" and bars.loc[0, "timeframe"] == "d1"
    assert bars.loc[0, "close"] == 10.5


def test_timezones_convert_to_utc_and_naive_means_utc(tmp_path):
    raw = _write(tmp_path, "x.csv", "symbol,timeframe,ts,open,high,low,close,volume\n"
                 "SPY,h1,2024-11-26T09:30:00-05:00,1,1,1,1,1\nSPY,h1,2024-11-26T15:30:00Z,1,1,1,1,1\n")
    bars = read_raw_file(raw)
    assert list(bars["ts"]) == [pd.Timestamp("2024-11-26 14:30", tz="UTC"), pd.Timestamp("2024-11-26 15:30", tz="UTC")]
    naive = read_raw_file(_write(tmp_path, "SPY_h1.csv", "ts,open,high,low,close,volume\n2024-11-26 14:30,1,1,1,1,1\n"))
    assert naive.loc[0, "ts"] == pd.Timestamp("2024-11-26 14:30", tz="UTC")


def test_file_level_problems_name_the_file_and_check(tmp_path):
    with pytest.raises(BadFile) as err:
        read_raw_file(_write(tmp_path, "SPY_d1.csv", "ts,open,high,low,volume\n2024-11-26,1,1,1,1\n"))
    assert err.value.check == "columns_present" and "close" in err.value.detail
    assert str(err.value).startswith("SPY_d1.csv: columns_present")


def test_landing_source_lists_the_session_folder_only(tmp_path):
    (tmp_path / "2024-11-26").mkdir()
    (tmp_path / "2024-11-26" / "SPY_d1.csv").write_text("x")
    (tmp_path / "2024-11-26" / "notes.txt").write_text("x")
    (tmp_path / "2024-11-27").mkdir()
    (tmp_path / "2024-11-27" / "SPY_d1.csv").write_text("x")
    import datetime as dt

    files = LandingSource(str(tmp_path), ["d1", "h1"]).raw_files([dt.date(2024, 11, 26)], ["SPY"], ["d1"])
    assert [f.name for f in files] == ["2024-11-26/SPY_d1.csv"]


def test_the_runs_symbols_and_timeframes_filter_landing_files_by_name(tmp_path):
    import datetime as dt

    day = tmp_path / "2024-11-26"
    day.mkdir()
    for name in ("SPY_d1.csv", "SPY_h1.csv", "AAPL_d1.csv", "MSFT.csv", "AAPL.parquet", "bars.csv", "BRK_B.csv"):
        (day / name).write_text("x")
    files = LandingSource(str(tmp_path), ["d1", "h1"]).raw_files([dt.date(2024, 11, 26)], ["AAPL", "BRK_B"], ["d1"])
    assert sorted(f.name.split("/")[1] for f in files) == ["AAPL.parquet", "AAPL_d1.csv", "BRK_B.csv", "bars.csv"]
