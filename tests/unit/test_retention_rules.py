"""Retention's decisions: which model versions are archived, and how far back rows are kept."""

from __future__ import annotations

import datetime as dt

from market_mlops.config import load_config
from market_mlops.monitoring.archive import months_before
from market_mlops.registry.retention import versions_to_archive


def test_the_default_keeps_champion_challenger_the_replaced_version_and_the_newest_five():
    keep = load_config().retention.keep_versions
    assert keep == 5
    versions = list(range(1, 21))
    # champion v3 (rolled back to), it replaced v12; challenger v20
    assert versions_to_archive(versions, champion=3, challenger=20, replaced=12, keep_last=keep) == [
        1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15]
    assert versions_to_archive([1, 2, 3], champion=3, challenger=3, replaced=2, keep_last=keep) == []
    assert versions_to_archive([4, 1, 3, 2], champion=None, challenger=None, replaced=None, keep_last=1) == [1, 2, 3]


def test_rows_are_kept_for_calendar_months():
    assert load_config().retention.archive_after_months == 12
    at = dt.datetime(2025, 3, 31, 6, tzinfo=dt.UTC)
    assert months_before(at, 1) == dt.datetime(2025, 2, 28, 6, tzinfo=dt.UTC)
    assert months_before(at, 12) == dt.datetime(2024, 3, 31, 6, tzinfo=dt.UTC)
