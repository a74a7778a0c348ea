"""The Models page and a page per model as self-contained HTML (inline CSS and SVG, one small inline script, no
CDN). Pure: the gathered facts in, a page out; `ui.app` does the reading.

Airflow shows the page from its menu in an iframe sandboxed without `allow-popups` or `allow-top-navigation`: a link
with `target=_blank` or `_top` does nothing there. Links to the suite's own pages stay in the frame (Airflow mirrors
the frame's address in its own, so a model's page has an address to share: `/plugin/models/mlops-models/model/<name>`);
links out (Airflow's pages, MLflow) are followed by an anchor made in the Airflow page itself (same origin), which the
sandbox does not restrict (`open_outside`); opened directly, they are plain links."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import quote

from market_mlops.config import Drift
from market_mlops.monitoring.charts import BAND_COLOURS, bar_chart, sparkline
from market_mlops.monitoring.drift_report import accuracy_chart
from market_mlops.monitoring.links import mlflow_model_url, mlflow_run_url, mlflow_versions_url
from market_mlops.monitoring.shadow import describe_live
from market_mlops.registry.gate import describe_skill
from market_mlops.ui.fleet import SORT_KEYS, ModelRow, VersionInfo

OPEN_OUTSIDE = """
function openOutside(link) {
  if (window.top === window) return true;
  try {
    var page = window.top.document, a = page.createElement('a');
    a.href = link.href; a.target = link.target === '_top' ? '_self' : '_blank'; a.rel = 'noopener';
    page.body.appendChild(a); a.click(); a.remove(); return false;
  } catch (e) { return true; }
}
"""

STYLE = """
body{font-family:sans-serif;margin:16px;color:#222}table{border-collapse:collapse;margin:8px 0 16px}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:middle;font-size:13px}
th{background:#f4f4f4}.band{padding:2px 8px;border-radius:10px;color:#fff;font-size:12px}
.flag{color:#c62828;font-weight:bold}.muted{color:#777}nav a{margin-right:10px}
.banner{padding:10px 14px;border-radius:6px;color:#fff;margin:8px 0 16px;font-size:15px}
"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style><script>{OPEN_OUTSIDE}</script></head><body>{body}</body></html>")


def outside(href: str, text: str, new_tab: bool = True, **attributes: str) -> str:
    """A link out of the suite's pages (MLflow in a new tab, Airflow in place) that works inside Airflow's sandboxed
    frame too."""
    extra = "".join(f' {k}="{escape(v)}"' for k, v in attributes.items())
    return (f'<a href="{escape(href)}" target="{"_blank" if new_tab else "_top"}" rel="noopener"{extra} '
            f'onclick="return openOutside(this)">{text}</a>')


def band_badge(band: str | None) -> str:
    if not band:
        return '<span class="muted">not checked</span>'
    return f'<span class="band" style="background:{BAND_COLOURS.get(band, "#777")}">{escape(band)}</span>'


def band_cell(r: ModelRow, min_outcomes: float) -> str:
    """The last band, or "too few outcomes (k of n)" when the check could not judge one (never a "normal" that means
    nothing)."""
    if r.band and r.too_few:
        needed = min_outcomes if r.outcomes_needed is None else r.outcomes_needed  # checks before the detector
        return (f'<span class="muted" title="{escape(r.band_reason)}">too few outcomes '
                f'({0 if r.outcomes is None else r.outcomes:.1f} of {needed:.1f})</span>')
    delta = "" if r.delta_points is None else f" <span class=muted>{r.delta_points:+.1f} pts</span>"
    return f"{band_badge(r.band)}{delta}"


def last_checked(r: ModelRow, now: dt.datetime, newest: str | None) -> str:
    """The session of the last check and its age; flagged when newer checks of the fleet passed this model by."""
    if not r.last_check:
        return '<span class="flag">never checked</span>' if r.champion is not None else ""
    when = dt.datetime.fromisoformat(r.last_check)
    text = f"{escape(r.last_check[:10])} <span class=muted>{_age(when, now)} ago</span>"
    if newest and r.last_check[:10] < newest[:10]:
        text += f' <span class="flag">not checked on {escape(newest[:10])}</span>'
    return text


def _age(created: dt.datetime | None, now: dt.datetime) -> str:
    if created is None:
        return ""
    days = (now - created).total_seconds() / 86400
    return f"{days:.0f} d" if days >= 1 else f"{days * 24:.0f} h"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _calibration(v: VersionInfo | None) -> str:
    """The champion's holdout log-loss beside climatology's (a calibrated model is never far above it)."""
    if v is None:
        return ""
    tags = v.tags
    own = tags.get(f"gate.{tags['baseline.rule']}_log_loss") if tags.get("kind") == "baseline" and \
        tags.get("baseline.rule") else tags.get("gate.challenger_log_loss")
    climatology = tags.get("gate.climatology_log_loss")
    if own in (None, "None", "nan") or climatology in (None, "None", "nan"):
        return ""
    return f"{float(own):.4f} / {float(climatology):.4f}"


def _version(v: VersionInfo | None, now: dt.datetime) -> str:
    if v is None:
        return '<span class="muted">none</span>'
    kind = f' <span class="muted">({escape(v.tags.get("baseline.rule", ""))} baseline)</span>' \
        if v.tags.get("kind") == "baseline" else ""
    return f'{outside(mlflow_model_url(v.model, v.version), f"v{escape(v.version)}")}{kind} ' \
           f'<span class="muted">{_age(v.created, now)}</span>'


def consensus_table(records: list[dict[str, Any]], min_outcomes: float) -> str:
    """The newest consensus per symbol: its call only where its record beats its anchor's ("no consensus edge"
    otherwise), its agreement, each champion's vote (or why it has none) and how the calls fared (the accuracy once
    the calls hold `min_outcomes` independent outcomes)."""
    from market_mlops.monitoring.consensus import NO_CALL, describe_edge, has_edge, judged_outcomes, vote_text

    if not records:
        return "<p class=muted>Consensus: none yet (the drift check builds one per symbol).</p>"
    body = []
    for r in records:
        votes = ", ".join(f"{escape(m['timeframe'])} h{m['horizon']} {escape(m['predicted'])} ({escape(vote_text(m))})"
                          for m in r["members"])
        outcomes = judged_outcomes(r)
        fared = ("no call resolved yet" if not r.get("resolved") else
                 f"{r['resolved']} resolved, {outcomes:.1f} outcomes: too few to judge" if outcomes < min_outcomes else
                 f"{_pct(r.get('realized_accuracy'))} of {r['resolved']} ({outcomes:.0f} outcomes; the "
                 f"{escape(r['anchor_timeframe'])} h{r['horizon']} champion alone {_pct(r.get('anchor_accuracy'))})")
        if r["direction"] == NO_CALL:
            call = '<span class="muted">no call</span>'
        elif has_edge(r):
            call = escape(r["direction"])
        else:
            call = (f'no consensus edge <span class="muted">(weighted call {escape(r["direction"])}; the '
                    f'{escape(r["anchor_timeframe"])} h{r["horizon"]} champion alone {escape(r["anchor_predicted"])})'
                    "</span>")
        agreement = "" if r["direction"] == NO_CALL else f"{r['agreement']:.2f}"
        body.append(f'<tr data-symbol="{escape(r["symbol"])}"><td>{escape(r["symbol"])}</td>'
                    f"<td>{call}</td><td>{agreement}</td><td>{votes}</td>"
                    f"<td>{fared}<br><span class=muted>{escape(describe_edge(r))}</span></td>"
                    f"<td>{escape(r['interval_end'][:10])}</td></tr>")
    head = ("<tr><th>symbol</th><th>consensus</th><th>agreement</th><th>votes (weight: log-loss skill over the "
            "champion's own baselines; baselines do not vote)</th><th>realized accuracy, edge over the anchor</th>"
            "<th>session</th></tr>")
    return f'<h2>Consensus across timeframes and horizons</h2><table id="consensus">{head}{"".join(body)}</table>'


def models_page(rows: list[ModelRow], now: dt.datetime, sort: str = "attention", band: str | None = None,
                airflow_base: str = "", consensus: list[dict[str, Any]] | None = None,
                min_outcomes: float = 25, failed_checks: list[str] | None = None) -> str:
    """One row per model: champion and challenger with age, the holdout against both baselines, the last band and
    the realized-accuracy trend, features drifted, cooldown, the last registration and its gate decision."""
    bands = ["", "emergency", "drift", "monitor", "normal", "none"]
    filters = " ".join(f'<a href="?sort={sort}&band={b}">{escape(b or "all")}</a>' if b != (band or "") else
                       f"<b>{escape(b or 'all')}</b>" for b in bands)
    sorts = " ".join(f'<a href="?sort={s}&band={escape(band or "")}">{s}</a>' if s != sort else f"<b>{s}</b>"
                     for s in SORT_KEYS)
    body = []
    newest = max((r.last_check for r in rows if r.last_check), default=None)
    for r in rows:
        latest = r.latest
        decision = latest.tags.get("gate.decision", "") if latest else ""
        body.append(
            f'<tr data-model="{escape(r.model)}" data-band="{escape(r.band or "none")}">'
            f'<td><a href="model/{quote(r.model)}">{escape(r.label)}</a>'
            f'{f" <span class=flag>{escape(r.flag)}</span>" if r.flag else ""}</td>'
            f"<td>{_version(r.champion, now)}</td><td>{_version(r.challenger, now)}</td>"
            f"<td>{escape(describe_skill(r.champion.tags) if r.champion else '')}</td>"
            f"<td>{_calibration(r.champion)}</td>"
            f"<td>{escape(describe_live({'shadow': r.shadow}) if r.shadow else '')}</td>"
            f"<td>{band_cell(r, min_outcomes)}</td><td>{last_checked(r, now, newest)}</td>"
            f"<td>{sparkline(r.realized_trend)}"
            f"{_pct(r.realized_trend[-1]) if r.realized_trend else '<span class=muted>none resolved</span>'}</td>"
            f"<td>{'' if r.features_drifted is None else r.features_drifted}</td>"
            f"<td>{'yes' if r.in_cooldown else ('no' if r.band else '')}</td>"
            f"<td>{'' if latest is None else f'v{escape(latest.version)} {_age(latest.created, now)} ago'}</td>"
            f"<td>{escape(decision)}</td>"
            f'<td>{outside(mlflow_versions_url(r.model), "versions and runs")}</td></tr>')
    head = ("<tr><th>model</th><th>champion (age)</th><th>challenger (age)</th>"
            "<th>holdout vs the better baseline (gate's intervals)</th><th>log-loss: champion / climatology</th>"
            "<th>shadow challenger's live record</th><th>last drift band</th><th>last checked</th>"
            "<th>realized accuracy</th>"
            "<th>features drifted</th><th>cooldown</th><th>last registered</th><th>gate decision</th><th>MLflow</th></tr>")
    flagged = sum(1 for r in rows if r.flag)
    judged = [r for r in rows if r.band and not r.too_few]
    summary = (f"<p>{len(rows)} model(s); {flagged} flagged for a person (no model, a baseline serving, a challenger "
               f"waiting); last bands: " + ", ".join(f"{sum(1 for r in judged if r.band == b)} {b}"
                                                     for b in ("emergency", "drift", "monitor", "normal"))
               + f", {sum(1 for r in rows if r.band and r.too_few)} too few outcomes to judge, "
               f"{sum(1 for r in rows if not r.band)} not checked</p>")
    failed = "".join(f'<p class="banner" style="background:#c62828" id="failed-check">{escape(text)}</p>'
                     for text in failed_checks or [])
    return _page("Models", f"<h1>Models</h1>{failed}{summary}<nav>Band: {filters}</nav><nav>Sort: {sorts}</nav>"
                           f'<table id="models">{head}{"".join(body)}</table>{consensus_table(consensus or [], min_outcomes)}')


@dataclass
class ModelDetail:
    """What one model's page shows, read by `ui.app`."""

    row: ModelRow
    checks: list[dict[str, Any]]  # drift history, oldest first
    moves: list[dict[str, Any]]  # alias moves (champion and challenger), oldest first: `aliases.alias_history`
    features: list[dict[str, Any]] = field(default_factory=list)  # the last drift report's PSI per feature
    forecasts: list[dict[str, Any]] = field(default_factory=list)  # recent forecasts with their outcome when known
    confusion: list[list[int]] | None = None  # champion's holdout: rows true class, columns predicted
    importance: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be read, said on the page
    baseline: list[str] = field(default_factory=list)  # a baseline champion: what it predicts, where its model stands
    all_versions: list[VersionInfo] = field(default_factory=list)


def _why_no_features(detail: ModelDetail) -> str:
    last = detail.checks[-1] if detail.checks else None
    if last is None:
        return "No drift check of this model yet."
    status = str(last.get("feature_drift") or "")
    if status and status != "measured":
        return f"Feature drift not measured at the last check ({str(last.get('interval_end', ''))[:10]}): {status}."
    return "The last drift report holds no feature measurements."


def forecast_drivers_text(forecast: dict[str, Any]) -> str:
    """A forecast's drivers as the page shows them: its largest contributions, signed; a baseline's class mix."""
    from market_mlops.monitoring.drivers import describe_drivers

    if forecast.get("drivers"):
        return describe_drivers(forecast["drivers"], k=5)
    return "baseline: class mix" if forecast.get("baseline") else ""


def model_page(detail: ModelDetail, now: dt.datetime, drift: Drift, airflow_base: str = "") -> str:
    r = detail.row
    chart = accuracy_chart(detail.checks, drift)
    links = ['<a href="../">all models</a>']
    if r.champion:
        links += [outside(mlflow_model_url(r.model, r.champion.version), "MLflow model"),
                  outside(mlflow_run_url(r.champion.run_id), "MLflow run")]
    if r.drift_run_id:
        links.append(f'<a href="../report/{quote(r.drift_run_id)}">last drift report</a>')
    links += [outside(f"{airflow_base}/dags/model_retrain/runs", "retrain runs", new_tab=False),
              outside(f"{airflow_base}/dags/model_rollback", f"roll back (trigger model_rollback with symbol "
                      f"{escape(r.symbol)}, timeframe {escape(r.timeframe)}"
                      f"{'' if r.horizon is None else f', horizon {r.horizon}'})", new_tab=False)]
    moves = "".join(
        f"<tr><td>{escape(str(m['when'])[:19])}</td><td>{escape(m['alias'])}</td>"
        f"<td>{escape(str(m.get('from') or '-'))}</td><td>{escape(str(m['to']))}</td>"
        f"<td>{escape(str(m['why']))}</td><td>{escape(str(m['who']))}</td></tr>" for m in detail.moves)
    ordered = sorted(detail.features, key=lambda f: (not f.get("drifted"), -(f.get("psi") or 0.0)))[:25]
    psi = bar_chart([f["feature"] for f in ordered], [float(f.get("psi") or 0.0) for f in ordered],
                    [f.get("psi_limit") for f in ordered], [bool(f.get("drifted")) for f in ordered],
                    title="PSI per feature against its limit (drifted first, red)") if ordered else \
        f'<p class="muted">{escape(_why_no_features(detail))}</p>'
    forecasts = "".join(
        f"<tr><td>{escape(str(f['ts'])[:16])}</td><td>v{escape(str(f['model_version']))}</td>"
        f"<td>{escape(str(f['predicted']))}</td><td>{f['p_bearish']:.2f} / {f['p_neutral']:.2f} / {f['p_bullish']:.2f}</td>"
        f"<td>{escape(str(f.get('realized') or 'not yet'))}</td>"
        f"<td>{'' if f.get('correct') is None else ('right' if f['correct'] else 'wrong')}</td>"
        f"<td class=drivers>{escape(forecast_drivers_text(f))}</td></tr>"
        for f in detail.forecasts)
    classes = ["bearish", "neutral", "bullish"]
    confusion = "" if not detail.confusion else (
        "<table><tr><th>true \\ predicted</th>" + "".join(f"<th>{c}</th>" for c in classes) + "</tr>"
        + "".join(f"<tr><th>{classes[i]}</th>" + "".join(f"<td>{n}</td>" for n in row) + "</tr>"
                  for i, row in enumerate(detail.confusion)) + "</table>")
    importance = bar_chart([n for n, _ in detail.importance[:15]], [v for _, v in detail.importance[:15]],
                           title="Feature importance (random forest)") if detail.importance else ""
    live = (f"<h2>Shadow challenger</h2><p id='shadow'>{escape(describe_live({'shadow': r.shadow}))}"
            f"{'' if not r.shadow else ' — ' + escape(str(r.shadow.get('reason', '')))}</p>") if r.shadow else \
        "<h2>Shadow challenger</h2><p id='shadow' class=muted>none: the challenger is the champion</p>"
    skill = escape(describe_skill(r.champion.tags)) if r.champion else ""
    facts = (f"<p>champion {_version(r.champion, now)} · challenger {_version(r.challenger, now)} · "
             f"{r.versions} version(s) · last band {band_badge(r.band)}"
             f"{' · in emergency cooldown' if r.in_cooldown else ''}"
             f"{f' · <span class=flag>{escape(r.flag)}</span>' if r.flag else ''}</p>")
    notes = "".join(f'<p class="muted">{escape(n)}</p>' for n in detail.notes)
    baseline = "".join(f'<p class="baseline">{escape(line)}</p>' for line in detail.baseline)
    facts += f"<p id='skill'>{skill}</p>" if skill else ""
    return _page(r.model, f"<h1>{escape(r.model)}</h1><nav>{' '.join(links)}</nav>{facts}{notes}{live}"
                          f'<h2>Realized accuracy</h2><div id="accuracy-chart">{chart}</div>'
                          "<h2>Champion timeline</h2><table id='timeline'><tr><th>when (UTC)</th><th>alias</th>"
                          f"<th>from</th><th>to</th><th>why</th><th>who</th></tr>{moves}</table>"
                          f'<h2>Feature drift (last check)</h2><div id="psi-chart">{psi}</div>'
                          "<h2>Recent forecasts and outcomes</h2><table id='forecasts'><tr><th>bar</th><th>model</th>"
                          f"<th>predicted</th><th>P(bear / neutral / bull)</th><th>outcome</th><th></th>"
                          f"<th>top drivers of the call (contribution to its margin)</th></tr>{forecasts}"
                          f"</table><h2>Champion's holdout</h2>{baseline}{confusion}{importance}")
