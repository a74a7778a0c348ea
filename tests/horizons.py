"""One horizon per timeframe for the tests that train: the configured main one.

Each horizon of a timeframe is its own model (`timeframes.<tf>.horizons`: d1 at 5, 1 and 20 sessions by default),
so a test that trains on the defaults trains three models where one shows what it checks. The test session, the
scale, scheduler and cluster tiers set these variables; the horizons test (`tests/e2e/test_horizons.py`) and the
demo the browser tier runs train every configured horizon.
"""

from __future__ import annotations

from market_mlops.config import DEFAULT_CONFIG_FILE, load_config


def main_horizon_only() -> dict[str, str]:
    """{MLOPS__TIMEFRAMES__<TF>__HORIZONS: its main horizon} of every timeframe of the default config."""
    configured = load_config(DEFAULT_CONFIG_FILE, environ={})
    return {f"MLOPS__TIMEFRAMES__{name.upper()}__HORIZONS": str(spec.horizon)
            for name, spec in configured.timeframes.items()}


ONE_HORIZON = main_horizon_only()
