"""The Great Expectations gate through the real ingestion path: good batches pass, bad ones are rejected with the
check named, quarantined, alerted, and nothing is merged."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from market_mlops.config import load_config
from market_mlops.data import calendar
from market_mlops.data.synthetic import GeneratorSpec, generate_bars
from market_mlops.monitoring.alerts import Outbox
from market_mlops.tasks.ingestion import BatchRejected, fetch_batch, validate_batch

SESSION = dt.date(2024, 11, 26)
HEADER = "ts,open,high,low,close,volume"


def good_frame() -> pd.DataFrame:
    bars = generate_bars(GeneratorSpec(seed=1), ["SPY"], "h1", SESSION, SESSION)
    return bars[["ts", "open", "high", "low", "close", "volume"]].reset_index(drop=True)


def to_csv(frame: pd.DataFrame) -> str:
    out = frame.copy()
    out["ts"] = out["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out.to_csv(index=False)


@pytest.fixture
def landing(mlops_home, monkeypatch):
    monkeypatch.setenv("MLOPS__SOURCE__KIND", "landing")
    monkeypatch.setenv("MLOPS__UNIVERSE__SYMBOLS", "SPY")
    monkeypatch.setenv("MLOPS__UNIVERSE__TIMEFRAMES", "h1")
    cfg = load_config()
    folder = cfg.path("landing") / SESSION.isoformat()
    folder.mkdir(parents=True)
    return cfg, folder


def _state(cfg) -> dict:
    """What a rejected batch must leave untouched: dataset bytes, its DVC version, the remote's objects."""
    from market_mlops.data.versioning import read_version

    files = lambda root: {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}  # noqa: E731
    return {"dataset": files(cfg.data_root / "dataset"), "version": read_version(cfg.data_root),
            "remote": files(Path(cfg.dvc_remote_url))}


@pytest.fixture
def versioned_landing(landing):
    """A landing folder on top of an existing, pushed dataset version (the day before)."""
    from market_mlops.data.dataset import merge_bars
    from market_mlops.data.versioning import commit_and_push

    cfg, folder = landing
    merge_bars(cfg.data_root / "dataset", generate_bars(GeneratorSpec(seed=1), ["SPY"], "h1", dt.date(2024, 11, 25), dt.date(2024, 11, 25)))
    commit_and_push(cfg.data_root, cfg.dvc_remote_url)
    return cfg, folder


def run_gate(cfg):
    s = calendar.session("XNYS", SESSION)
    fetched = fetch_batch(s.interval_start.to_pydatetime(), s.close.to_pydatetime(), cfg=cfg)
    return validate_batch(fetched, run_id="test", cfg=cfg)


def test_good_batch_passes_and_its_result_is_kept(landing):
    cfg, folder = landing
    (folder / "SPY_h1.csv").write_text(to_csv(good_frame()))
    result = run_gate(cfg)
    assert result["rows"] == 7
    report = json.loads(next((cfg.data_root / "validation").glob("*.json")).read_text())
    assert report["success"] and report["result_id"] == result["result_id"]


def _mutate(fn):
    def build():
        frame = good_frame()
        fn(frame)
        return to_csv(frame)
    return build


def _set(col, value, row=2):
    return _mutate(lambda f: f.__setitem__(col, f[col].where(f.index != row, value)))


def _text_in_volume() -> str:
    lines = to_csv(good_frame()).splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",lots"
    return "\n".join(lines) + "\n"


def _duplicate_header() -> str:
    frame = good_frame()
    frame["Volume"] = frame["volume"]
    return to_csv(frame)


def _shift_ts(row: int, delta: pd.Timedelta):
    return _mutate(lambda f: f.__setitem__("ts", f["ts"].where(f.index != row, f["ts"][row] + delta)))


def _scale_prices(row: int, factor: float):
    return _mutate(lambda f: [f.__setitem__(c, f[c].where(f.index != row, f[c] * factor)) for c in ["open", "high", "low", "close"]])


NOT_UTF8 = b"ts,open,high,low,close,volume\n2024-11-26T14:30:00Z,1,1,1,1,\xff\xfe\n"

# kind -> (CSV content builder, the check the rejection must name, the evidence its one line must carry: the
# offending value and where it is). The session's bars open at 14:30, 15:30, ... 20:30 UTC (rows 0..6).
BAD_BATCHES = {
    "empty_file": (lambda: "", "file_not_empty", "the file is empty"),
    "header_only": (lambda: HEADER + "\n", "file_not_empty", "header but no rows"),
    "not_utf8": (lambda: NOT_UTF8, "file_is_utf8", "not UTF-8 text (byte 59)"),
    "missing_column": (lambda: to_csv(good_frame().drop(columns="volume")), "columns_present", "['volume']"),
    "unknown_column": (lambda: to_csv(good_frame().assign(foo=1)), "columns_known", "['foo']"),
    "duplicate_header": (_duplicate_header, "columns_unique", "'volume'"),
    "text_in_number": (_text_in_volume, "numbers_numeric", "'lots' on line 4 (ts 2024-11-26T16:30:00Z)"),
    "unparseable_ts": (lambda: to_csv(good_frame()).replace("2024-11-26T15", "yesterday-", 1), "ts_parseable",
                       "'yesterday-:30:00Z' on line 3"),
    "mixed_naive_and_aware": (lambda: to_csv(good_frame()).replace("Z,", ",", 2), "ts_timezone_consistent",
                              "'2024-11-26T14:30:00' on line 2 has no offset"),
    "nan_price": (_set("close", float("nan")), "close_not_null", "close=nan at 2024-11-26 16:30"),
    "zero_price": (_set("open", 0.0), "open_positive", "open=0 at 2024-11-26 16:30"),
    "negative_price": (_set("low", -1.0), "low_positive", "low=-1 at 2024-11-26 16:30"),
    "high_below_low": (_mutate(lambda f: f.__setitem__("high", f["low"] * 0.99)), "high_ge_open", "at 2024-11-26 14:30"),
    "close_above_high": (_mutate(lambda f: f.__setitem__("close", f["high"] * 1.01)), "high_ge_close",
                         "at 2024-11-26 14:30"),
    "negative_volume": (_set("volume", -5.0), "volume_non_negative", "volume=-5 at 2024-11-26 16:30"),
    "duplicate_ts": (_mutate(lambda f: f.__setitem__("ts", f["ts"].where(f.index != 3, f["ts"][2]))), "ts_unique",
                     "2024-11-26 16:30"),
    "unsorted": (lambda: to_csv(good_frame().iloc[[0, 2, 1, 3, 4, 5, 6]]), "ts_increasing",
                 "ts_step_ok=False at 2024-11-26 15:30"),
    "future_bar": (_shift_ts(6, pd.Timedelta(days=3)), "ts_inside_interval", "at 2024-11-29 20:30"),
    "bar_before_interval": (_shift_ts(0, -pd.Timedelta(days=2)), "ts_inside_interval", "at 2024-11-24 14:30"),
    "price_spike_50x": (_scale_prices(3, 50), "return_not_impossible", "at 2024-11-26 17:30"),
    "wrong_symbol": (lambda: to_csv(good_frame().assign(symbol="ZZZZ")), "symbol_in_universe", "symbol=ZZZZ at"),
    "mixed_timeframes": (lambda: to_csv(good_frame().assign(timeframe=["h1"] * 6 + ["d1"])), "one_timeframe_per_file",
                         "timeframe=d1, file_timeframe=h1 at"),
}


@pytest.mark.parametrize("kind", sorted(BAD_BATCHES))
def test_bad_batch_is_rejected_naming_the_check_and_quarantined(versioned_landing, kind):
    cfg, folder = versioned_landing
    state_before = _state(cfg)
    build, check, evidence = BAD_BATCHES[kind]
    raw = folder / "SPY_h1.csv"
    content = build()
    raw.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = raw.read_bytes()
    with pytest.raises(BatchRejected) as err:
        run_gate(cfg)
    message = str(err.value)
    assert "\n" not in message
    assert "2024-11-26/SPY_h1.csv" in message and check in message, message
    assert evidence in message, message
    assert "missing_sessions_within_tolerance" not in message  # a file that could not be read is not also a gap
    assert raw.read_bytes() == before  # raw file untouched
    reports = list((cfg.data_root / "quarantine").glob("*/*/report.json"))
    assert len(reports) == 1
    quarantined = list(reports[0].parent.glob("files/*"))
    assert [p.read_bytes() for p in quarantined] == [before]
    assert _state(cfg) == state_before  # dataset, its md5 and the DVC remote unchanged
    assert not (cfg.data_root / "staging").exists()
    alerts = Outbox(cfg).records()
    assert alerts and alerts[-1]["alert"]["kind"] == "validation"


def test_missing_session_is_rejected_by_the_coverage_suite(landing):
    cfg, _folder = landing  # nothing dropped for the session
    with pytest.raises(BatchRejected, match="missing_sessions_within_tolerance"):
        run_gate(cfg)


def test_extreme_but_possible_return_is_only_a_warning(landing):
    cfg, folder = landing
    frame = good_frame()
    for c in ["open", "high", "low", "close"]:
        frame.loc[4:, c] = frame.loc[4:, c] * 1.4  # a 40% jump that stays: warning level, not rejected
    (folder / "SPY_h1.csv").write_text(to_csv(frame))
    run_gate(cfg)
    report = json.loads(next((cfg.data_root / "validation").glob("*.json")).read_text())
    assert any("return_not_extreme" in w for w in report["warnings"])


def test_a_missing_close_is_one_finding_not_also_a_bad_range(landing):
    """A NaN close used to fail close_not_null and also high_ge_close and close_ge_low (NaN compares false)."""
    cfg, folder = landing
    (folder / "SPY_h1.csv").write_text(BAD_BATCHES["nan_price"][0]())
    with pytest.raises(BatchRejected) as rejected:
        run_gate(cfg)
    message = str(rejected.value)
    assert "close_not_null" in message
    assert "high_ge_close" not in message and "close_ge_low" not in message
