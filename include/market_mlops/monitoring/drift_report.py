"""The drift report a person reads: a self-contained HTML page (inline SVG, no script, no CDN: it opens offline from
MLflow's artifact view or a download) logged to MLflow beside its JSON. A banner says the band and what was decided
(retrain, cooldown, nothing) and why; features are listed drifted first, each against its own limit."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from market_mlops.config import Drift
from market_mlops.monitoring import links
from market_mlops.monitoring.charts import BAND_COLOURS, Line, bar_chart, line_chart

BAND_MEANING = {
    "normal": "no band's change detector has fired on the champion's resolved calls",
    "monitor": "the monitor band's change detector fired: accuracy looks below the reference by its edge; watch it",
    "drift": "the drift band's change detector fired: an alert went out; the next scheduled retrain will try to "
             "replace the model",
    "emergency": "the emergency band's change detector fired",
}


def accuracy_lines(reference: float | None, drift: Drift) -> list[Line]:
    """The reference accuracy and the three band edges below it, as chart lines."""
    if reference is None:
        return []
    return [Line(reference, "reference", "#555")] + [
        Line(reference + points / 100, f"{name} {points:+g}", BAND_COLOURS[name])
        for name, points in (("monitor", drift.monitor_below), ("drift", drift.drift_below),
                             ("emergency", drift.emergency_below))]


def accuracy_chart(checks: Sequence[dict[str, Any]], drift: Drift) -> str:
    """Realized accuracy check by check (oldest first) on a time axis against the latest reference and its bands;
    the line breaks where the champion's version changes (each version has its own forecasts)."""
    import datetime as dt

    reference = next((float(c["holdout_accuracy"]) for c in reversed(checks) if c.get("holdout_accuracy") is not None),
                     None)
    try:
        days = [dt.datetime.fromisoformat(str(c["interval_end"])).timestamp() / 86400 for c in checks]
    except ValueError:
        days = None
    versions = [str(c.get("version", c.get("model_version", ""))) for c in checks]
    breaks = [i > 0 and versions[i] != versions[i - 1] for i in range(len(checks))]
    return line_chart([str(c["interval_end"])[:10] for c in checks], [c.get("realized_accuracy") for c in checks],
                      accuracy_lines(reference, drift),
                      title="Realized accuracy of the champion's resolved forecasts, with the drift bands",
                      positions=days, breaks=breaks)


def _number(value: Any, fmt: str) -> str:
    try:
        return fmt.format(float(value))
    except (TypeError, ValueError):
        return "n/a"


def banner(report: dict[str, Any]) -> str:
    band = str(report.get("band", "normal"))
    accuracy = (f"realized {_number(report.get('realized_accuracy'), '{:.1%}')} against the reference "
                f"{_number(report.get('holdout_accuracy'), '{:.1%}')} ({_number(report.get('delta_points'), '{:+.1f}')} "
                f"pts over {report.get('resolved', 0)} resolved forecasts)")
    decision = str(report.get("emergency_reason") or "") if band == "emergency" else ""  # others never retrain
    if band == "emergency" and report.get("in_cooldown"):
        decision = decision or "emergency retrain skipped: one was triggered within the cooldown"
    evidence = f" {report['band_reason']}." if report.get("band_reason") else ""
    if report.get("outcomes_needed") is not None:  # nothing judged: not a "normal" that means nothing
        text = (f"Too few outcomes ({_number(report.get('outcomes'), '{:.0f}')} of "
                f"{_number(report.get('outcomes_needed'), '{:.0f}')}) to judge a band; {accuracy}.{evidence}")
        return f'<div class="banner" style="background:#777">{html.escape(text)}</div>'
    text = f"Band {band}: {BAND_MEANING.get(band, '')}; {accuracy}.{evidence}" + (f" {decision}." if decision else "")
    return (f'<div class="banner" style="background:{BAND_COLOURS.get(band, "#777")}">'
            f"{html.escape(text)}</div>")


def render_html(report: dict[str, Any], history: Sequence[dict[str, Any]] = (), drift: Drift | None = None) -> str:
    """The page; `history`: the model's earlier checks (this one is added), for the accuracy chart."""
    earlier = [c for c in history if c.get("interval_end") != report.get("interval_end")]
    accuracy = accuracy_chart([*earlier, report], drift or Drift())
    features = sorted(report.get("features", []), key=lambda f: (not f.get("drifted"), -(f.get("psi") or 0.0)))
    shown = features[:30]
    chart = bar_chart([f["feature"] for f in shown], [float(f.get("psi") or 0.0) for f in shown],
                      [f.get("psi_limit") for f in shown], [bool(f.get("drifted")) for f in shown],
                      title=f"PSI per feature against its limit: {report.get('features_drifted', 0)} of "
                            f"{report.get('features_checked', 0)} drifted (red, first)")
    rows = "".join(f"<tr><td>{html.escape(f['feature'])}</td><td>{f['psi']}</td><td>{f['psi_limit']}</td>"
                   f"<td>{f['ks']}</td><td>{'yes' if f['drifted'] else ''}</td></tr>" for f in shown)
    facts = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in report.items() if not isinstance(v, list | dict))
    urls = {"MLflow model": links.mlflow_model_url(report["model"], str(report["version"]))}
    page = links.model_page_url(report["model"])
    if page:
        urls["Model page in Airflow"] = page
    nav = " · ".join(f'<a href="{html.escape(u)}">{html.escape(k)}</a>' for k, u in urls.items())
    explained = attribution_section(report)
    style = ("body{font-family:sans-serif;margin:16px}table{border-collapse:collapse}th,td{border-bottom:1px solid #ddd;"
             "padding:3px 8px;text-align:left;font-size:13px}.banner{padding:10px 14px;border-radius:6px;color:#fff}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Drift {html.escape(report['model'])}</title>"
            f"<style>{style}</style></head><body>"
            f"<h1>Drift report: {html.escape(report['model'])} v{report['version']}</h1>{banner(report)}<p>{nav}</p>"
            f"<h2>Accuracy</h2>{accuracy}<h2>Features</h2><p>{html.escape(str(report.get('feature_drift_rule', '')))}</p>{chart}"
            "<table><tr><th>feature</th><th>PSI</th><th>PSI limit</th><th>KS</th><th>drifted</th></tr>"
            f"{rows}</table>{explained}<h2>All figures</h2><table>{facts}</table></body></html>")


def attribution_section(report: dict[str, Any]) -> str:
    """Why the newest forecast was made, and which features the model leans on differently than on its holdout
    (their share of the mean absolute contribution, live minus holdout); a baseline has no features to lean on."""
    if report.get("serving") == "baseline":
        return "<h2>Attributions</h2><p>A baseline serves: its calls follow its class mix, not features.</p>"
    drivers = report.get("latest_drivers") or []
    moved = report.get("attribution_shift") or []
    if not drivers and not moved:
        return ""
    newest = "".join(f"<tr><td>{html.escape(str(f))}</td><td>{v:+.4f}</td></tr>" for f, v in drivers)
    shifts = "".join(f"<tr><td>{html.escape(str(f))}</td><td>{m:+.1%}</td></tr>" for f, m in moved)
    return ("<h2>Attributions</h2><p>The newest forecast's largest contributions to its called class "
            "(ensemble-weighted margin):</p><table><tr><th>feature</th><th>contribution</th></tr>" + newest + "</table>"
            "<p>Attribution drift: the features whose share of the model's mean |contribution| moved most between its "
            "holdout and its last forecasts:</p><table><tr><th>feature</th><th>share, live minus holdout</th></tr>"
            + shifts + "</table>")
