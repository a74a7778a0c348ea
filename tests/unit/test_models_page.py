"""The Models pages and the drift report from known facts: which model is flagged, the order people read them in,
and what the charts and the banner say (pure functions; the browser tier opens the real pages)."""

from __future__ import annotations

import datetime as dt
import re

from market_mlops.config import Drift
from market_mlops.monitoring.drift_report import render_html
from market_mlops.ui.fleet import VersionInfo, model_rows, sort_and_filter
from market_mlops.ui.pages import ModelDetail, model_page, models_page

NOW = dt.datetime(2025, 7, 10, tzinfo=dt.UTC)


def _version(model: str, n: int, aliases: tuple[str, ...] = (), decision: str = "promoted", accuracy: str = "0.55"):
    return VersionInfo(model, str(n), NOW - dt.timedelta(days=10 - n), aliases,
                       {"gate.decision": decision, "gate.challenger_accuracy": accuracy, "gate.climatology_accuracy": "0.4",
                        "gate.persistence_accuracy": "0.45", "gate.baseline_compared": "persistence",
                        "gate.skill_mean": "0.031", "gate.skill_low": "0.012", "gate.skill_high": "0.05",
                        "gate.accuracy_diff_mean": "0.1", "gate.accuracy_diff_low": "0.02", "gate.accuracy_diff_high": "0.18",
                        "gate.challenger_log_loss": "1.0412", "gate.climatology_log_loss": "1.0985"}, f"run{n}")


SHADOW = {"challenger": "2", "champion": "1", "decision": "keep", "reason": "v2 not proven better than champion v1 live",
          "versus_champion": {"mean": 0.012, "low": -0.02, "high": 0.04, "e_value": 3.1, "threshold": 300.0,
                              "outcomes": 42.0, "sessions": 42, "proven": False}}


def _check(model: str, day: int, band: str, realized: float, delta: float) -> dict:
    return {"model": model, "interval_end": f"2025-07-{day:02d}T20:00:00+00:00", "band": band,
            "realized_accuracy": realized, "holdout_accuracy": 0.55, "delta_points": delta, "features_drifted": 2,
            "in_cooldown": band == "emergency" and day > 7, "mlflow_run_id": f"drift{day}",
            "shadow": SHADOW if model == "SPY-d1-direction" else None}


VERSIONS = [_version("SPY-d1-direction", 1, ("champion",)), _version("AAPL-d1-direction", 1),
            _version("AAPL-d1-direction", 2, ("challenger",), "kept as challenger"),
            _version("QQQ-h1-direction", 1, ("champion",))]
CHECKS = [_check("SPY-d1-direction", 7, "normal", 0.56, 1.0), _check("SPY-d1-direction", 8, "emergency", 0.20, -35.0),
          _check("QQQ-h1-direction", 8, "monitor", 0.49, -6.0)]
PAIRS = [("SPY", "d1", None), ("AAPL", "d1", None), ("MSFT", "d1", None)]  # each timeframe's main horizon


def test_rows_flag_what_needs_a_person_and_carry_the_last_check():
    rows = {r.model: r for r in model_rows(PAIRS, VERSIONS, CHECKS)}
    assert set(rows) == {"SPY-d1-direction", "AAPL-d1-direction", "MSFT-d1-direction", "QQQ-h1-direction"}
    assert rows["AAPL-d1-direction"].flag == "no champion (challenger waiting)"
    assert rows["MSFT-d1-direction"].flag == "not trained" and rows["MSFT-d1-direction"].band is None
    spy = rows["SPY-d1-direction"]
    assert spy.flag == "" and spy.champion is not None and spy.champion.version == "1"
    assert spy.band == "emergency" and spy.realized_trend == [0.56, 0.20] and spy.in_cooldown
    assert rows["QQQ-h1-direction"].timeframe == "h1"  # registered, outside the configured universe


def test_attention_order_puts_flags_then_the_worst_band_first_and_the_filter_keeps_one_band():
    rows = model_rows(PAIRS, VERSIONS, CHECKS)
    order = [r.model for r in sort_and_filter(rows)]
    assert order[:2] == ["AAPL-d1-direction", "MSFT-d1-direction"]  # flagged
    assert order[2:] == ["SPY-d1-direction", "QQQ-h1-direction"]  # emergency before monitor
    assert [r.model for r in sort_and_filter(rows, band="monitor")] == ["QQQ-h1-direction"]
    assert [r.model for r in sort_and_filter(rows, band="none")] == ["AAPL-d1-direction", "MSFT-d1-direction"]


def test_models_page_has_a_row_per_model_with_its_band_and_trend():
    page = models_page(sort_and_filter(model_rows(PAIRS, VERSIONS, CHECKS)), NOW)
    bands = dict(re.findall(r'data-model="([^"]+)" data-band="([^"]+)"', page))
    assert bands == {"AAPL-d1-direction": "none", "MSFT-d1-direction": "none", "SPY-d1-direction": "emergency",
                     "QQQ-h1-direction": "monitor"}
    spy_row = page[page.index('data-model="SPY-d1-direction"'):].split("</tr>")[0]
    assert "<polyline" in spy_row and "-35.0 pts" in spy_row
    assert "log-loss skill +0.0310 nats [+0.0120, +0.0500] vs the persistence baseline" in spy_row
    assert "accuracy +10.0 pts [+2.0, +18.0]" in spy_row and "1.0412 / 1.0985" in spy_row
    assert "shadow v2: +0.0120 nats [-0.0200, +0.0400] on 42 sessions (42 outcomes), e-value 3.1 of 300: keep" in spy_row
    assert 'href="model/SPY-d1-direction"' in spy_row


def test_model_page_draws_accuracy_against_the_bands_and_drifted_features_first():
    row = next(r for r in model_rows(PAIRS, VERSIONS, CHECKS) if r.model == "SPY-d1-direction")
    features = [{"feature": "calm", "psi": 0.9, "psi_limit": 1.2, "drifted": False},
                {"feature": "moved", "psi": 0.3, "psi_limit": 0.25, "drifted": True}]
    moves = [{"when": "2025-07-01T00:00:00", "alias": "champion", "from": None, "to": "1", "why": "promoted",
              "who": "model_retrain"}]
    page = model_page(ModelDetail(row, [c for c in CHECKS if c["model"] == row.model], moves, features,
                                  confusion=[[5, 1, 0], [2, 3, 1], [0, 1, 6]], importance=[("ret_1", 0.2)]), NOW, Drift())
    chart = page[page.index('id="accuracy-chart"'):page.index("Champion timeline")]
    assert chart.count("<circle") == 2 and "emergency -15" in chart and "reference" in chart
    psi = page[page.index('id="psi-chart"'):]
    assert psi.index(">moved<") < psi.index(">calm<")
    assert "promoted" in page[page.index("id='timeline'"):] and "<th>bullish</th>" in page


def test_drift_report_banner_says_why_an_emergency_did_not_retrain_and_lists_drifted_features_first():
    report = {"model": "SPY-d1-direction", "version": "3", "band": "emergency",
              "interval_end": "2025-07-08T20:00:00+00:00", "realized_accuracy": 0.2,
              "holdout_accuracy": 0.55, "delta_points": -35.0, "resolved": 40, "in_cooldown": True,
              "emergency_retrain_triggered": False, "features_drifted": 1, "features_checked": 2,
              "emergency_reason": "emergency retrain skipped: one was triggered 2025-07-07 20:00 UTC, within the "
                                  "7-day cooldown", "feature_drift_rule": "own limits",
              "features": [{"feature": "calm", "psi": 0.9, "psi_limit": 1.2, "ks": 0.1, "drifted": False},
                           {"feature": "moved", "psi": 0.3, "psi_limit": 0.25, "ks": 0.2, "drifted": True}]}
    page = render_html(report, [_check("SPY-d1-direction", 7, "normal", 0.56, 1.0)], Drift())
    chart = page[page.index("<h2>Accuracy</h2>"):page.index("<h2>Features</h2>")]
    assert chart.count("<circle") == 2 and "emergency -15" in chart  # the earlier check and this one
    banner = page[page.index('class="banner"'):page.index("</div>")]
    assert "Band emergency" in banner and "-35.0 pts over 40 resolved" in banner and "within the 7-day cooldown" in banner
    assert "<svg" in page and page.index("<td>moved</td>") < page.index("<td>calm</td>")
    assert "cdn" not in page.lower() and "<script" not in page


def test_links_to_the_model_page_only_with_an_airflow_base_url(monkeypatch):
    from market_mlops.monitoring.links import model_page_url

    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    assert model_page_url("SPY-d1-direction") is None  # a Slack message needs an absolute link
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    assert model_page_url("SPY-d1-direction") == "https://airflow.example.com/mlops-models/model/SPY-d1-direction"
    page = render_html({"model": "SPY-d1-direction", "version": "1", "band": "normal", "features": [],
                        "interval_end": "2025-07-08T20:00:00+00:00"})
    assert 'href="https://airflow.example.com/mlops-models/model/SPY-d1-direction"' in page


def test_the_accuracy_line_breaks_between_versions_on_a_time_axis():
    import re

    from market_mlops.config import Drift
    from market_mlops.monitoring.drift_report import accuracy_chart

    checks = [{"interval_end": "2024-01-02T21:00:00+00:00", "version": "1", "realized_accuracy": 0.5, "holdout_accuracy": 0.5},
              {"interval_end": "2024-01-03T21:00:00+00:00", "version": "1", "realized_accuracy": 0.45, "holdout_accuracy": 0.5},
              {"interval_end": "2025-01-03T21:00:00+00:00", "version": "2", "realized_accuracy": 0.4, "holdout_accuracy": 0.5},
              {"interval_end": "2025-01-06T21:00:00+00:00", "version": "2", "realized_accuracy": 0.42, "holdout_accuracy": 0.5}]
    chart = accuracy_chart(checks, Drift())
    assert chart.count('<polyline points=') == 2  # one segment per version, no line across the year between them
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', chart)]
    assert xs[1] - xs[0] < (xs[2] - xs[1]) / 100  # a day apart vs a year apart


def test_models_page_shows_each_symbols_consensus_with_its_votes_and_how_its_calls_fared():
    member = {"timeframe": "d1", "horizon": 5, "predicted": "BULLISH", "weight": 0.7, "serving": "model",
              "skill": 0.014, "skill_from": "holdout"}
    edge = {"mean": 0.021, "low": 0.004, "high": 0.05, "e_value": 9.0, "outcomes": 28.0, "proven": True}
    records = [{"symbol": "SPY", "direction": "BULLISH", "agreement": 0.7, "interval_end": "2025-11-14T21:45:00+00:00",
                "members": [member, {**member, "timeframe": "h1", "horizon": 6, "predicted": "BEARISH", "weight": 0.3},
                            {**member, "horizon": 20, "predicted": "NEUTRAL", "weight": 0.0, "serving": "baseline"}],
                "resolved": 140, "realized_accuracy": 0.5, "anchor_accuracy": 0.4167, "anchor_timeframe": "d1",
                "anchor_predicted": "BEARISH", "horizon": 5, "edge": edge}]
    page = models_page(sort_and_filter(model_rows(PAIRS, VERSIONS, CHECKS)), NOW, consensus=records, min_outcomes=25)
    row = page.split('data-symbol="SPY"')[1].split("</tr>")[0]
    assert "<td>BULLISH</td>" in row and "0.70" in row
    assert ("d1 h5 BULLISH (0.70: holdout skill +0.0140 nats), h1 h6 BEARISH (0.30: holdout skill +0.0140 nats), "
            "d1 h20 NEUTRAL (no vote: a baseline serves)") in row
    assert "50.0% of 140 (28 outcomes; the d1 h5 champion alone 41.7%)" in row
    assert "consensus edge proven: +0.0210 nats over the anchor alone on 28 outcomes" in row
    # Until its log-loss beats the anchor's on the same calls, the call is not shown as one.
    unproven = {**records[0], "edge": {**edge, "low": -0.01, "e_value": 1.5, "proven": False}}
    row = models_page([], NOW, consensus=[unproven]).split('data-symbol="SPY"')[1].split("</tr>")[0]
    assert "no consensus edge" in row and "<td>BULLISH</td>" not in row and "d1 h5 champion alone BEARISH" in row
    silent = {**records[0], "direction": "NONE", "agreement": 0.0, "reason": "no member has skill over its baselines"}
    row = models_page([], NOW, consensus=[silent]).split('data-symbol="SPY"')[1].split("</tr>")[0]
    assert "no call" in row and "no consensus: no member has skill" in row
    # 12 calls on a 5-session label are 2.4 independent outcomes: no accuracy is shown for them
    few = models_page([], NOW, consensus=[{**records[0], "resolved": 12}], min_outcomes=25)
    row = few.split('data-symbol="SPY"')[1].split("</tr>")[0]
    assert "12 resolved, 2.4 outcomes: too few to judge" in row and "50.0%" not in row
    assert "Consensus: none yet" in models_page([], NOW)


def test_a_band_that_could_not_be_judged_reads_too_few_and_a_model_the_last_check_missed_is_flagged():
    thin = {**_check("SPY-d1-direction", 9, "normal", 0.38, -18.7), "outcomes": 0.7, "outcomes_needed": 4.6,
            "band_reason": "too few outcomes (1 of 5) to judge"}  # what the drift check stores (its detectors')
    rows = model_rows(PAIRS, VERSIONS, [*CHECKS, thin])
    page = models_page(sort_and_filter(rows), NOW, min_outcomes=25,
                       failed_checks=["Stale data: drift check refused for the session closing 2025-07-10 20:00 UTC"])
    spy_row = page[page.index('data-model="SPY-d1-direction"'):].split("</tr>")[0]
    assert "too few outcomes (0.7 of 4.6)" in spy_row and "-18.7 pts" not in spy_row and ">normal<" not in spy_row
    assert "2025-07-09" in spy_row and "not checked on" not in spy_row
    qqq_row = page[page.index('data-model="QQQ-h1-direction"'):].split("</tr>")[0]
    assert "2025-07-08" in qqq_row and "not checked on 2025-07-09" in qqq_row  # the fleet's newest check missed it
    assert 'id="failed-check"' in page and "drift check refused for the session closing 2025-07-10" in page


def test_a_baseline_page_describes_the_baseline_and_where_its_model_stands():
    from market_mlops.ui.app import describe_baseline

    baseline = VersionInfo("AAPL-d1-direction", "2", NOW, ("champion",), {"kind": "baseline",
                                                                           "baseline.rule": "persistence"}, "r2")
    model = VersionInfo("AAPL-d1-direction", "1", NOW, ("challenger",),
                        {"gate.reason": "skill over the persistence baseline not proven: +0.0100 nats"}, "r1")
    lines = describe_baseline(baseline, {"model_log_loss": 1.0811, "climatology_log_loss": 1.096,
                                         "model_accuracy": 0.41}, model)
    assert lines[0].startswith("v2 is the persistence baseline: it forecasts the class shares that followed each")
    assert lines[1] == "Its holdout: log-loss 1.0811 (climatology 1.0960), accuracy 41.0%."
    assert lines[2] == ("The trained model v1 is its challenger, forecasting in shadow; its gate said: skill over the "
                        "persistence baseline not proven: +0.0100 nats.")


def test_a_psi_value_label_is_written_right_of_its_limit_tick_never_over_it():
    import re

    from market_mlops.monitoring.charts import bar_chart

    svg = bar_chart(["rsi_14", "vol_20"], [0.05, 0.9], [0.4, 0.3])
    ticks = [float(x) for x in re.findall(r'<line x1="([\d.]+)"', svg)]
    labels = [float(x) for x in re.findall(r'<text x="([\d.]+)" y="[\d.]+" font-size="10">', svg)]
    bars = [float(w) for w in re.findall(r'<rect x="170" y="[\d.]+" width="([\d.]+)"', svg)]
    assert len(ticks) == len(labels) == len(bars) == 2
    for tick, label, width in zip(ticks, labels, bars, strict=True):
        assert label > max(tick, 170 + width), (tick, label, width)


def test_the_drift_report_shows_the_newest_forecasts_drivers_and_the_attribution_drift():
    from market_mlops.monitoring.drift_report import attribution_section

    model = {"serving": "model", "latest_drivers": [["rsi_14", 0.21], ["vol_20", -0.08]],
             "attribution_shift": [["vol_20", 0.12], ["rsi_14", -0.05], ["ret_1", -0.01]]}
    html = attribution_section(model)
    assert "<td>rsi_14</td><td>+0.2100</td>" in html and "<td>vol_20</td><td>+12.0%</td>" in html
    assert "follow its class mix" in attribution_section({"serving": "baseline"})
    assert attribution_section({"serving": "model"}) == ""  # a version from before attributions: nothing claimed
