"""Live records end to end with the DAGs, on the default gate and live-record levels: a champion model the market
turned against is demoted to the baseline on its live forecasts, and a challenger an operator rolled back from is
promoted again once its edge is proven on the sessions it forecast in shadow.

The market: hourly bars of the suite's generator with a strong planted order-flow effect (`signal_strength` 2, the strongest) that
reverses after 31 January 2025 (`shift_after`). The one-hour model trained on the year before (1 February 2025)
learned the effect as it was and is proven over both baselines; after the turn it calls the market backwards.
`training.history_years` is 1 here (default 8) so that the retrain a year after the turn learns the market as it
then is: a user whose market changed would shorten the history the same way; the gate, its levels and the live
records run on their defaults.
"""

from __future__ import annotations

import datetime as dt

import pytest

from market_mlops.data.calendar import session, sessions_between

from .conftest import run_dag

pytestmark = [pytest.mark.e2e, pytest.mark.training]
MARKET = {"MLOPS__UNIVERSE__SYMBOLS": "AAPL", "MLOPS__UNIVERSE__BENCHMARK": "SPY", "MLOPS__UNIVERSE__TIMEFRAMES": "h1",
          "MLOPS__SOURCE__SYNTHETIC__SIGNAL_STRENGTH": "2.0", "MLOPS__SOURCE__SYNTHETIC__SHIFT_AFTER": "2025-01-31",
          "MLOPS__TRAINING__HISTORY_YEARS": "1"}
NAME = "AAPL-h1-h1-direction"
ONE_HOUR = {"symbols": ["AAPL"], "timeframes": ["h1"], "horizons": [1]}


def _after_close(day: dt.date) -> dt.datetime:
    return session("XNYS", day).close.to_pydatetime() + dt.timedelta(minutes=45)


def _retrain(dagbag, cutoff: dt.datetime) -> str:
    # `until`: the data version this home logged by the cutoff (the session's Airflow DB holds other tests' Asset
    # events, whose data versions this home's remote does not have).
    return run_dag(dagbag.dags["model_retrain"], cutoff, {**ONE_HOUR, "force_promotion": False,
                                                          "until": cutoff.isoformat(), "reason": "test",
                                                          "search_trials": 0})


@pytest.fixture
def own_dags(airflow_db):
    """The DAGs parsed for this test alone: dag.test() runs tasks in this process, and a run's conf (one horizon,
    `until`) left in a shared DAG's params would narrow the later tests' runs."""
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags"))


def test_live_records_demote_a_broken_champion_and_promote_a_proven_shadow_challenger(own_dags, mlops_home,
                                                                                      monkeypatch):
    from market_mlops.config import get_config
    from market_mlops.monitoring.alerts import Outbox
    from market_mlops.monitoring.forecasts import load_forecasts
    from market_mlops.monitoring.history import drift_history
    from market_mlops.registry import aliases, store
    from market_mlops.tasks.promotion import rollback_model

    for key, value in MARKET.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLOPS__TIMEFRAMES__H1__HORIZONS")  # the configured horizons (6, 1, 24), not the session's pin
    dagbag = own_dags
    ingest = dagbag.dags["market_data_ingestion"]
    assert run_dag(ingest, _after_close(dt.date(2026, 3, 31)), {"history_start": "2023-12-01"}) == "success"
    cfg = get_config()
    c = store.client()

    # The model of the market before the turn: proven over both baselines, the first champion.
    assert _retrain(dagbag, dt.datetime(2025, 2, 1, tzinfo=dt.UTC)) == "success"
    first = c.get_model_version(NAME, "1").tags
    assert first["gate.decision"] == "promoted", first["gate.reason"]
    assert aliases.alias_version(NAME, aliases.CHAMPION, cfg) == "1"

    # After the turn its live forecasts lose to a baseline: once that is proven, the baseline serves (its tables as
    # counted on the rows v1 learned), audited and announced.
    drift = dagbag.dags["drift_check"]
    demoted_on = None
    for day in (dt.date(2025, 2, 14), dt.date(2025, 3, 3), dt.date(2025, 4, 1), dt.date(2025, 6, 2)):
        assert run_dag(drift, _after_close(day), ONE_HOUR) == "success"
        if aliases.alias_version(NAME, aliases.CHAMPION, cfg) != "1":
            demoted_on = day
            break
    assert demoted_on is not None, drift_history(cfg, NAME)[-1]["live"]
    record = drift_history(cfg, NAME)[-1]
    assert record["live_action"]["action"] == "demote" and record["live"]["demote_to"] in {"climatology", "persistence"}
    baseline = aliases.alias_version(NAME, aliases.CHAMPION, cfg)
    assert c.get_model_version(NAME, baseline).tags["kind"] == "baseline"
    assert c.get_model_version(NAME, "1").tags["replaced_reason"].startswith("live record: the ")
    assert any(r["alert"]["title"].startswith(f"The {record['live']['demote_to']} baseline serves {NAME}")
               for r in Outbox(cfg).latest().values())

    # A year on, the retrain learns the market as it now is and replaces the baseline; an operator rolls back to the
    # baseline anyway (the version the new champion replaced): the model forecasts in shadow beside it.
    assert _retrain(dagbag, dt.datetime(2026, 2, 1, tzinfo=dt.UTC)) == "success"
    newer = aliases.alias_version(NAME, aliases.CHAMPION, cfg)
    assert newer not in (None, "1", baseline) and c.get_model_version(NAME, newer).tags["gate.decision"] == "promoted"
    assert rollback_model("AAPL", "h1", cfg=cfg, horizon=1)["to"] == baseline
    assert aliases.alias_version(NAME, aliases.CHALLENGER, cfg) == newer

    sessions = []
    for day in (dt.date(2026, 2, 3), dt.date(2026, 2, 4), dt.date(2026, 2, 5)):
        assert run_dag(drift, _after_close(day), ONE_HOUR) == "success"
        shadow = drift_history(cfg, NAME)[-1]["shadow"]
        assert shadow["challenger"] == newer and shadow["champion"] == baseline
        assert shadow["decision"] in {"too few outcomes", "keep"} and not shadow["versus_champion"]["proven"]
        sessions.append(shadow["versus_champion"]["sessions"])
    assert sessions[0] < sessions[1] < sessions[2], sessions  # the record grows session by session
    shadows = load_forecasts("AAPL", "h1", cfg, model_version=newer, model_name=NAME)
    assert "shadow" in set(shadows["role"])
    assert set(load_forecasts("AAPL", "h1", cfg, model_version=baseline, model_name=NAME)["role"]) == {"champion"}

    # Later sessions: its live evidence crosses the live level (1/300, valid however often it is read) and it is
    # promoted on its record alone.
    promoted_on = None
    for day in (dt.date(2026, 2, 13), dt.date(2026, 2, 27), dt.date(2026, 3, 13), dt.date(2026, 3, 27)):
        assert run_dag(drift, _after_close(day), ONE_HOUR) == "success"
        if aliases.alias_version(NAME, aliases.CHAMPION, cfg) == newer:
            promoted_on = day
            break
    assert promoted_on is not None, drift_history(cfg, NAME)[-1]["shadow"]
    record = drift_history(cfg, NAME)[-1]
    versus = record["shadow"]["versus_champion"]
    assert record["live_action"]["action"] == "promote" and versus["proven"]
    assert versus["e_value"] >= versus["threshold"] == 300 and versus["low"] > 0
    move = aliases.alias_history(NAME, cfg=cfg)[-1]
    assert (move["from"], move["to"]) == (baseline, newer)
    assert move["why"].startswith(f"live record: v{newer} proven better than champion v{baseline}")
    assert any(r["alert"]["title"] == f"Promoted {NAME} v{newer} to champion on its live record"
               for r in Outbox(cfg).latest().values())
    # The next check measures it as the champion, with no shadow; its forecasts made in shadow stay shadow.
    next_day = sessions_between("XNYS", promoted_on + dt.timedelta(days=1), promoted_on + dt.timedelta(days=10))[0]
    assert run_dag(drift, _after_close(next_day), ONE_HOUR) == "success"
    after = drift_history(cfg, NAME)[-1]
    assert after["version"] == newer and after["shadow"] is None and after["live_action"] is None
    roles = load_forecasts("AAPL", "h1", cfg, model_version=newer, model_name=NAME).set_index("ts")["role"]
    assert roles.loc[roles.index < "2026-02-10"].eq("shadow").any() and roles.iloc[-1] == "champion"
