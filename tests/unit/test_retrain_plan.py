"""Which data a retrain run trains on: Asset event at a month end, other sessions skipped, cron, emergency."""

from __future__ import annotations

import datetime as dt

import pytest

from market_mlops.config import load_config
from market_mlops.tasks.retrain import plan_retrain


def _xnys(tmp_path) -> object:
    """A stock-only universe: runs close with the NYSE (the default universe's FX pair moves closes to 17:00 NY)."""
    return load_config(environ={"MLOPS_HOME": str(tmp_path), "MLOPS__UNIVERSE__SYMBOLS": "SPY,AAPL",
                                "MLOPS__UNIVERSE__CALENDARS": "{}"})


def _event(close: str, md5: str = "abc.dir") -> dict:
    return {"md5": md5, "interval_end": close, "interval_start": close[:10] + "T00:00:00+00:00", "gx_result_id": "gx"}


def test_asset_event_of_the_months_last_session_trains_up_to_the_first(tmp_path):
    cfg = _xnys(tmp_path)
    plan = plan_retrain("", None, [_event("2025-09-30T20:00:00+00:00", "sep.dir")], [], cfg)
    assert plan == {"until": "2025-10-01T00:00:00+00:00", "md5": "sep.dir", "trigger": "asset"}
    # The last session of November 2024 is the early-closing Friday after Thanksgiving.
    plan = plan_retrain("", None, [_event("2024-11-29T18:00:00+00:00")], [], cfg)
    assert plan["until"] == "2024-12-01T00:00:00+00:00"


def test_in_a_mixed_universe_the_event_at_the_later_fx_close_closes_the_month(tmp_path):
    cfg = load_config(environ={"MLOPS_HOME": str(tmp_path), "MLOPS__UNIVERSE__CALENDARS": "{EURUSD: FX}"})
    assert cfg.universe.schedule_calendar == "XNYS+FX"
    plan = plan_retrain("", None, [_event("2025-09-30T21:00:00+00:00", "sep.dir")], [], cfg)  # 17:00 New York
    assert plan == {"until": "2025-10-01T00:00:00+00:00", "md5": "sep.dir", "trigger": "asset"}


def test_asset_event_of_any_other_session_skips(tmp_path):
    cfg = _xnys(tmp_path)
    assert plan_retrain("", None, [_event("2025-09-29T20:00:00+00:00")], [], cfg) is None
    assert plan_retrain("", None, [_event("2024-07-03T17:00:00+00:00")], [], cfg) is None


def test_cron_and_emergency_runs(tmp_path):
    cfg = _xnys(tmp_path)
    first = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    assert plan_retrain("", first, [], [], cfg) == {"until": first.isoformat(), "md5": None, "trigger": "cron"}
    emergency = plan_retrain("2025-11-14T21:00:00+00:00", first, [], [], cfg)
    assert emergency["until"] == "2025-11-14T21:00:00+00:00" and emergency["trigger"] == "param"


def test_a_batch_of_queued_events_trains_for_the_month_one_of_them_closes(tmp_path):
    cfg = _xnys(tmp_path)
    batch = [_event("2024-07-05T20:00:00+00:00", "jul.dir"), _event("2025-09-30T20:00:00+00:00", "sep.dir"),
             _event("2026-11-20T21:00:00+00:00", "nov.dir")]
    plan = plan_retrain("", None, batch, [], cfg)
    assert plan == {"until": "2025-10-01T00:00:00+00:00", "md5": "sep.dir", "trigger": "asset"}


def test_a_cron_run_refuses_data_that_stops_long_before_its_month(tmp_path):
    """A fresh deployment unpaused on 23 Nov 2026 runs the cron retrain for October at once; if the only data
    version ends in July 2024 it must fail with one line, not register a model named for October."""
    from market_mlops.data.versioning import log_version
    from market_mlops.tasks.retrain import NoDataVersion, resolve_data_version

    cfg = _xnys(tmp_path)
    log_version({"md5": "jul2024.dir", "interval_end": "2024-07-05T20:00:00+00:00", "run_id": "jul"}, cfg)
    with pytest.raises(NoDataVersion, match=r"ends 2024-07-05, but the last session before it closed 2026-10-30 .*"
                                            r"backfill market_data_ingestion up to 2026-10-30 first"):
        resolve_data_version(dt.datetime(2026, 11, 1, tzinfo=dt.UTC), cfg=cfg)
    # A catch-up run logged later that reached past the month's end: it is used (bars after the cutoff are
    # dropped at training), so resolving goes on to DVC and fails only on the missing object.
    log_version({"md5": "catchup.dir", "interval_end": "2026-11-20T21:00:00+00:00", "run_id": "catch-up"}, cfg)
    with pytest.raises(Exception, match="catchup") as caught:
        resolve_data_version(dt.datetime(2026, 11, 1, tzinfo=dt.UTC), cfg=cfg)
    assert not isinstance(caught.value, NoDataVersion)


def test_a_version_with_a_hole_before_the_cutoff_is_refused_by_its_bars(tmp_path):
    """The version log says a catch-up run reached the cutoff; the bars say the pair stops weeks earlier."""
    from market_mlops.data.dataset import merge_bars
    from market_mlops.data.synthetic import GeneratorSpec, generate_bars
    from market_mlops.tasks.retrain import training_frame

    cfg = _xnys(tmp_path)
    root = tmp_path / "dataset"
    merge_bars(root, generate_bars(GeneratorSpec(seed=3), ["SPY"], "d1", dt.date(2022, 1, 3), dt.date(2024, 6, 28)))
    until = dt.datetime(2024, 8, 1, tzinfo=dt.UTC)
    from market_mlops.tasks.retrain import SeriesEnded

    with pytest.raises(SeriesEnded, match=r"^SPY d1's data end 2024-06-28, before this cutoff \(its bars must reach "
                                         r"2024-07-28 00:00 UTC .*\): the series ended or its vendor is late; import "
                                         r"its later sessions"):
        training_frame(root, "SPY", "d1", cfg, until, 3, fresh_from=dt.datetime(2024, 7, 28, tzinfo=dt.UTC))
    # Bars after the cutoff: sessions are missing in between, a hole, and a backfill fills it.
    merge_bars(root, generate_bars(GeneratorSpec(seed=3), ["SPY"], "d1", dt.date(2024, 8, 5), dt.date(2024, 8, 9)))
    with pytest.raises(ValueError, match=r"^SPY d1 has a hole: its last bar before the cutoff starts 2024-06-28 "
                                         r".*, and later bars exist; backfill market_data_ingestion from 2024-06-28"):
        training_frame(root, "SPY", "d1", cfg, until, 3, fresh_from=dt.datetime(2024, 7, 28, tzinfo=dt.UTC))
    X, y, bars = training_frame(root, "SPY", "d1", cfg, until, 3, fresh_from=dt.datetime(2024, 6, 28, 20, tzinfo=dt.UTC))
    assert len(X) == len(y) > 50 and bars["ts"].iloc[-1] < until


def _logged(md5: str, end: str, at: str) -> dict:
    return {"md5": md5, "interval_end": end, "logged_at": at, "gx_result_id": f"gx-{md5}"}


def test_the_data_version_choice_is_point_in_time_and_refuses_stale_data():
    """`choose_training_version` alone (pure: the version log is an argument)."""
    from market_mlops.data.versioning import choose_training_version, ends_before

    cutoff = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    due = dt.datetime(2025, 9, 30, 20, tzinfo=dt.UTC)
    floor = due - dt.timedelta(days=3)
    history = [_logged("aug.dir", "2025-08-29T20:00:00+00:00", "2025-08-29T21:00"),
               _logged("sep.dir", "2025-09-30T20:00:00+00:00", "2025-09-30T21:00"),
               _logged("oct.dir", "2025-10-01T20:00:00+00:00", "2025-10-01T21:00")]
    assert choose_training_version(history, cutoff, None, due, floor)["md5"] == "sep.dir"  # never October's
    assert choose_training_version(history, cutoff, "aug.dir", due, floor)["md5"] == "sep.dir"  # stale event: newer
    assert choose_training_version([], cutoff, None, due, floor) is None
    vouched = choose_training_version([], cutoff, "evt.dir", due, floor)
    assert vouched == {"md5": "evt.dir", "gx_result_id": "unknown"} and not ends_before(vouched, floor)
    # Only August was logged by the cutoff; a catch-up run logged later reached the month's last session.
    catch_up = [history[0], _logged("late.dir", "2025-10-03T20:00:00+00:00", "2025-10-03T21:00")]
    assert choose_training_version(catch_up, cutoff, None, due, floor)["md5"] == "late.dir"
    # Nothing reached it: the stale record comes back and the caller refuses it.
    stale = choose_training_version(history[:1], cutoff, None, due, floor)
    assert stale["md5"] == "aug.dir" and ends_before(stale, floor)


def test_a_retrain_says_which_stored_bars_its_history_window_leaves_out(tmp_path):
    """`training.history_years` cuts a long file silently no more: the retrain's line names the bars left out."""
    import pandas as pd

    from market_mlops.data.dataset import merge_bars
    from market_mlops.data.synthetic import GeneratorSpec, generate_bars
    from market_mlops.tasks.retrain import history_note

    merge_bars(tmp_path, generate_bars(GeneratorSpec(benchmark=None), ["AAPL"], "d1", dt.date(2018, 1, 2),
                                       dt.date(2020, 6, 30)), {"d1": "year"})
    until, first = dt.datetime(2020, 7, 1, tzinfo=dt.UTC), pd.Timestamp("2019-09-03", tz="UTC")
    assert history_note(tmp_path, "AAPL", "d1", until, 1, first) == (
        "learned rows from 2019-09-03 (training.history_years 1 leaves out its stored bars from 2018-01-02 to "
        "2019-07-02)")
    assert history_note(tmp_path, "AAPL", "d1", until, 8, first) == "learned rows from 2019-09-03"
