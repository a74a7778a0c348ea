"""The boundary-jump limit of the continuity check grows with the sessions between the stored bar and the new one
(a backfill gates its runs in parallel, so a run may find the stored history several sessions behind)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from market_mlops.data.continuity import continuity_break

LIMIT = float(np.log1p(0.25))


def _bars(day: str, close: float) -> pd.DataFrame:
    return pd.DataFrame({"ts": [pd.Timestamp(day, tz="UTC")], "open": [close], "high": [close], "low": [close],
                         "close": [close], "volume": [1e6]})


def test_a_move_over_three_sessions_is_judged_against_a_wider_limit():
    stored, new = _bars("2025-06-30", 28.482), _bars("2025-07-03", 21.7411)  # -23.7%: log move 0.270 > 0.223
    refused = continuity_break("MSFT", "d1", new, stored, LIMIT, sessions_apart=1)
    assert refused is not None and refused.kind == "price_gap"
    assert "-23.7%" in refused.message and "sqrt" not in refused.message
    assert continuity_break("MSFT", "d1", new, stored, LIMIT, sessions_apart=3) is None


def test_a_wider_limit_still_refuses_a_unit_change_and_a_far_jump():
    stored = _bars("2025-06-30", 28.482)
    unit = continuity_break("MSFT", "d1", _bars("2025-07-03", 2848.2), stored, LIMIT, sessions_apart=3)
    assert unit is not None and unit.kind == "unit_change"
    far = continuity_break("MSFT", "d1", _bars("2025-07-03", 28.482 * 1.5), stored, LIMIT, sessions_apart=3)
    assert far is not None and far.kind == "price_gap" and "x sqrt(3 sessions since the stored bar)" in far.message
