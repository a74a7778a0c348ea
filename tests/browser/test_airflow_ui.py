"""The Airflow UI as users see it, in Debian's Chromium (Playwright drives the system browser): after the demo, every
DAG's trigger form submits with its defaults, a retrain task's MLflow buttons open the right MLflow pages, and the
MLflow menu entry opens MLflow. Screenshots of each page go to build/browser/ (CI keeps them as artifacts)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import free_port

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "build" / "browser"
VENV_BIN = Path(sys.executable).parent
DAGS = ["market_data_ingestion", "model_retrain", "weekly_weight_refresh", "drift_check", "model_rollback"]


class UI:
    def __init__(self, base: str, mlflow: str) -> None:
        self.base, self.mlflow = base, mlflow
        self._token = json.loads(urllib.request.urlopen(f"{base}/auth/token", timeout=30).read())["access_token"]

    def api(self, path: str) -> dict:
        req = urllib.request.Request(f"{self.base}/api/v2{path}", headers={"Authorization": f"Bearer {self._token}"})
        return json.loads(urllib.request.urlopen(req, timeout=30).read())

    def runs(self, dag_id: str) -> list[dict]:
        return self.api(f"/dags/{dag_id}/dagRuns?limit=200")["dag_runs"]

    def post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(f"{self.base}/api/v2{path}", method="POST", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {self._token}",
                                              "Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=30).read())

    def patch(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(f"{self.base}/api/v2{path}", method="PATCH", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {self._token}",
                                              "Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=30).read())


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's demo, run as a user runs it, into its own MLOPS_HOME."""
    home = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS"))}
    env["MLOPS_HOME"] = str(home)
    out = subprocess.run([sys.executable, "-m", "market_mlops.dev.demo"], env=env, capture_output=True, text=True,
                         timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return home


@pytest.fixture(scope="module")
def ui(demo_home: Path) -> Iterator[UI]:
    """What `make ui` starts (`airflow standalone` and an MLflow server on the demo's state, DAGs paused so the runs
    the forms create stay queued), every user an admin so the browser needs no login."""
    from market_mlops.dev.ui import start_servers, stop

    airflow_port, mlflow_port = free_port(), free_port()
    with pytest.MonkeyPatch.context() as patch:  # as a user's shell starts it: none of the test session's pins
        for key in [k for k in os.environ if k.startswith("MLOPS__")]:
            patch.delenv(key)
        airflow, mlflow, _ = start_servers(demo_home, airflow_port, mlflow_port, paused=True,
                                           extra={"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"})
    try:
        yield UI(f"http://127.0.0.1:{airflow_port}", f"http://127.0.0.1:{mlflow_port}")
    finally:
        stop(airflow)
        stop(mlflow, grace=10)


@pytest.fixture(scope="module")
def page(ui: UI):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(60_000)
        yield tab
        browser.close()


def test_the_demo_task_logs_hold_the_suites_lines_and_airflows_frame_only(demo_home: Path):
    """Every task log of the demo: the suite's own lines (with numbers in them) and Airflow's frame (the task's start,
    its return value, the XCom push, the fold markers); no ANSI colour codes, no library chatter (alembic, Great
    Expectations, DVC's own handlers, MLflow's input-example warning, numpy overflows)."""
    logs = list((demo_home / "airflow" / "logs").rglob("*.log"))
    assert len(logs) > 50, len(logs)
    frame = ("airflow.", "task")
    foreign = []
    for path in logs:
        for raw in path.read_text(errors="replace").splitlines():
            line = json.loads(raw)
            event, logger = str(line.get("event", "")), str(line.get("logger") or "")
            assert "\x1b[" not in raw and "\u001b[" not in raw, (path, raw[:200])
            framed = any(f"[{name}" in event for name in frame)  # Airflow's structlog lines name their logger in
            # the event: "[airflow.…]", or "[task]" (the task runner's "Pushing xcom …", seen in CI's logs)
            if logger.startswith("market_mlops") or logger.startswith(frame) or framed:
                continue
            foreign.append(f"{path.parent.name}: {logger or '-'}: {event[:120]}")
    assert foreign == [], foreign[:20]


def test_the_demo_leaves_no_queued_run_and_honest_durations(ui: UI):
    runs = {dag_id: ui.runs(dag_id) for dag_id in DAGS}
    assert not [r["dag_run_id"] for rs in runs.values() for r in rs if r["state"] in ("queued", "running")]
    long = [(r["dag_id"], r["dag_run_id"], r["duration"]) for rs in runs.values() for r in rs if (r["duration"] or 0) > 3600]
    assert not long, f"runs that read as longer than an hour: {long}"
    # 4 ingestion, the monthly retrain (and one per emergency a drift check raised), 1 refresh, 3 drift checks
    assert sum(len(rs) for rs in runs.values()) >= 9 and len(runs["model_retrain"]) >= 1


@pytest.mark.parametrize("dag_id", DAGS)
def test_every_trigger_form_submits_with_its_defaults(ui: UI, page, dag_id: str):
    before = {r["dag_run_id"] for r in ui.runs(dag_id)}
    page.goto(f"{ui.base}/dags/{dag_id}", wait_until="networkidle")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.locator("[role=dialog][data-state=open]")
    dialog.wait_for()
    unpause = dialog.get_by_role("checkbox")
    if unpause.count() and unpause.first.is_checked():
        dialog.get_by_text("Unpause").click()  # keep the DAG paused: the run stays queued, nothing executes
    submit = dialog.get_by_role("button", name="Trigger")
    page.screenshot(path=str(SHOTS / f"trigger-{dag_id}.png"), full_page=True)
    assert submit.is_enabled(), f"{dag_id}: the form does not validate with its defaults"
    submit.click()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        created = [r for r in ui.runs(dag_id) if r["dag_run_id"] not in before]
        if created:
            break
        time.sleep(2)
    assert created, f"{dag_id}: no run was created by the form"
    assert created[0]["run_type"] == "manual"
    page.screenshot(path=str(SHOTS / f"triggered-{dag_id}.png"))


def test_retrain_task_buttons_open_its_mlflow_run_and_model(ui: UI, page):
    run = next(r for r in ui.runs("model_retrain") if r["state"] == "success" and r["conf"].get("reason") == "scheduled")
    tis = ui.api(f"/dags/model_retrain/dagRuns/{run['dag_run_id']}/taskInstances?task_id=retrain_model")
    ti = sorted(tis["task_instances"], key=lambda t: t["map_index"])[0]
    page.goto(f"{ui.base}/dags/model_retrain/runs/{run['dag_run_id']}/tasks/retrain_model/mapped/{ti['map_index']}/details",
              wait_until="networkidle")
    run_link, model_link = page.get_by_role("link", name="MLflow run"), page.get_by_role("link", name="MLflow model")
    run_link.wait_for()
    page.screenshot(path=str(SHOTS / "retrain-task-links.png"), full_page=True)
    run_url, model_url = run_link.get_attribute("href"), model_link.get_attribute("href")
    assert run_url and run_url.startswith(f"{ui.mlflow}/#/runs/"), run_url
    assert model_url and model_url.startswith(f"{ui.mlflow}/#/models/") and "-direction/versions/" in model_url

    run_id = run_url.rsplit("/", 1)[-1]
    page.goto(run_url)
    page.get_by_text("retrain-").first.wait_for()  # the run's name, retrain-<SYMBOL>-<tf>-<cutoff>
    assert run_id in page.url or page.get_by_text(run_id).count() > 0
    page.screenshot(path=str(SHOTS / "mlflow-run.png"))
    model = model_url.split("/#/models/", 1)[1].split("/versions/")[0]
    page.goto(model_url)
    page.get_by_text(model).first.wait_for()
    page.screenshot(path=str(SHOTS / "mlflow-model-version.png"))


def test_a_retrain_task_log_is_where_the_ui_reads_it_short_and_clean(ui: UI):
    """The demo ran its DAGs in process (dag.test): each task's log is where Airflow's log reader finds it. A
    one-model retrain task's log through the API the grid view calls: under 100 lines, no deprecation warning, no
    ERROR line (the task succeeded), numbers printed as numbers."""
    from urllib.parse import quote

    run = next(r for r in ui.runs("model_retrain") if r["state"] == "success")
    body = ui.api(f"/dags/model_retrain/dagRuns/{quote(run['dag_run_id'])}/taskInstances/retrain_model/logs/1"
                  "?map_index=0")
    lines = body["content"]
    events = [str(line.get("event", "")) for line in lines]
    assert 5 < len(lines) < 100, events
    assert not [e for e in events if "deprecat" in e.lower()]
    assert not [line for line in lines if str(line.get("level", "")).lower() in ("error", "critical")]
    assert any(e.startswith("retrained ") for e in events) and not [e for e in events if "np.float64" in e]


def test_the_mlflow_menu_entry_opens_mlflow(ui: UI, page):
    page.goto(f"{ui.base}/", wait_until="networkidle")
    page.get_by_role("button", name="Browse").click()
    entry = page.get_by_role("menuitem", name="MLflow")  # a link drawn as a menu item
    entry.wait_for()
    page.screenshot(path=str(SHOTS / "menu-browse.png"))
    assert entry.get_attribute("href") == ui.mlflow
    if entry.get_attribute("target") == "_blank":
        with page.context.expect_page() as opened:
            entry.click()
        mlflow_page = opened.value
    else:
        entry.click()
        mlflow_page = page
    mlflow_page.wait_for_url(f"{ui.mlflow}**")
    mlflow_page.get_by_text("Experiments").first.wait_for()
    mlflow_page.screenshot(path=str(SHOTS / "mlflow-home.png"))


def _demo_drift_bands(demo_home: Path) -> dict[str, str]:
    """The last drift band of each model, from the demo's SQL store (what the Models page must show)."""
    import sqlite3

    with sqlite3.connect(demo_home / "state.db") as db:
        rows = db.execute("SELECT model, band FROM drift_checks ORDER BY interval_end").fetchall()
    return dict(rows)


def test_models_page_lists_every_model_with_its_last_band(ui: UI, page, demo_home: Path):
    from mlflow import MlflowClient

    page.goto(f"{ui.base}/", wait_until="networkidle")
    entry = page.get_by_role("link", name="Models").or_(page.get_by_role("button", name="Models")).first
    entry.click()
    page.wait_for_url("**/plugin/models")
    frame = page.frame_locator("iframe").first
    frame.locator("#models").wait_for()
    page.screenshot(path=str(SHOTS / "models-page.png"), full_page=True)
    shown = {row.get_attribute("data-model"): row.get_attribute("data-band")
             for row in frame.locator("#models tr[data-model]").all()}
    registered = {m.name for m in MlflowClient(tracking_uri=ui.mlflow).search_registered_models()}
    assert registered and registered <= set(shown), (registered, shown)
    bands = _demo_drift_bands(demo_home)
    assert bands and {m: shown[m] for m in bands} == bands
    # The demo runs the default horizons: every d1 and h1 series is three models, and each symbol's consensus
    # takes a vote from each of its champions.
    assert {"AAPL-d1-direction", "AAPL-d1-h1-direction", "AAPL-d1-h20-direction", "AAPL-h1-h24-direction"} <= registered
    votes = frame.locator('#consensus tr[data-symbol="AAPL"]').inner_text()
    assert "d1 h20" in votes and "d1 h1" in votes and "h1 h6" in votes, votes


def test_every_kind_of_link_on_the_models_pages_works_from_the_menu(ui: UI, page, demo_home: Path):
    """Opened the way users open it (Airflow's menu: an iframe sandboxed without popups or top navigation): a model
    link stays in the frame and gives the page an address to share; MLflow opens in a new tab; the drift report
    opens; an Airflow link takes the whole page there."""
    import sqlite3
    from urllib.parse import quote

    with sqlite3.connect(demo_home / "state.db") as db:
        model = db.execute("SELECT model FROM drift_checks GROUP BY model ORDER BY count(*) DESC, model").fetchone()[0]
    page.goto(f"{ui.base}/", wait_until="networkidle")
    page.get_by_role("link", name="Models").or_(page.get_by_role("button", name="Models")).first.click()
    page.wait_for_url("**/plugin/models")
    frame = page.frame_locator("iframe").first
    frame.locator(f'#models tr[data-model="{model}"] td a').first.click()
    frame.locator("#accuracy-chart").wait_for()
    page.wait_for_url(f"**/plugin/models/mlops-models/model/{quote(model)}")
    shared = page.url
    assert frame.locator("h1").inner_text() == model

    with page.context.expect_page() as opened:  # MLflow: a new tab, from inside the sandbox
        frame.get_by_role("link", name="MLflow run").click()
    mlflow_tab = opened.value
    mlflow_tab.wait_for_url(f"{ui.mlflow}/#/runs/**")
    mlflow_tab.close()

    frame.get_by_role("link", name="last drift report").click()  # the report itself, in the frame
    frame.get_by_text("Drift report:").wait_for()
    assert model in frame.locator("h1").inner_text()

    page.goto(shared, wait_until="networkidle")  # the shared address opens the same model's page
    frame = page.frame_locator("iframe").first
    frame.locator("#accuracy-chart").wait_for()
    assert frame.locator("h1").inner_text() == model
    frame.get_by_role("link", name="retrain runs").click()  # Airflow's own page: the whole window goes there
    page.wait_for_url(f"{ui.base}/dags/model_retrain/runs**")
    page.screenshot(path=str(SHOTS / "models-link-to-runs.png"))


def test_a_model_page_draws_its_charts(ui: UI, page, demo_home: Path):
    import sqlite3

    with sqlite3.connect(demo_home / "state.db") as db:
        model = db.execute("SELECT model FROM drift_checks GROUP BY model ORDER BY count(*) DESC, model").fetchone()[0]
    page.goto(f"{ui.base}/mlops-models/model/{model}", wait_until="networkidle")
    page.locator("#accuracy-chart svg").wait_for()
    page.screenshot(path=str(SHOTS / "model-page.png"), full_page=True)
    assert page.locator("#accuracy-chart svg circle").count() >= 1
    assert page.locator("#psi-chart svg rect").count() >= 10
    assert page.locator("#timeline tr").count() >= 2  # the header and at least the first promotion
    assert "Could not read" not in page.content()


def test_a_rollback_triggered_from_the_ui_shows_on_the_model_page(ui: UI, page, demo_home: Path):
    """The model_rollback form, its conf typed into the form's "Configuration JSON" editor, run by the scheduler; the
    model page's champion timeline then shows the move back (forced: the trained model never passed the gate)."""
    import sqlite3

    with sqlite3.connect(demo_home / "state.db") as db:  # a series the baseline serves: back to its trained model
        model, current = db.execute("SELECT model, to_version FROM alias_moves WHERE alias = 'champion' AND why LIKE "
                                    "'baseline: %' ORDER BY id DESC").fetchone()
        previous = db.execute("SELECT to_version FROM alias_moves WHERE alias = 'challenger' AND model = ? ORDER BY id "
                              "DESC", (model,)).fetchone()[0]
    from market_mlops.ui.fleet import parse_model_name

    symbol, timeframe, horizon = parse_model_name(model)  # type: ignore[misc]
    before = {r["dag_run_id"] for r in ui.runs("model_rollback")}
    page.goto(f"{ui.base}/dags/model_rollback", wait_until="networkidle")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.locator("[role=dialog][data-state=open]")
    dialog.wait_for()
    dialog.get_by_text("Advanced Options").click()
    editor = dialog.locator(".monaco-editor").last  # "Configuration JSON"
    editor.wait_for()
    page.screenshot(path=str(SHOTS / "rollback-form-advanced.png"), full_page=True)
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(json.dumps({"symbol": symbol, "timeframe": timeframe, "horizon": horizon,
                                          "to_version": previous, "force": True, "reason": "a look at the model"}))
    page.screenshot(path=str(SHOTS / "rollback-form.png"), full_page=True)
    dialog.get_by_role("button", name="Trigger").click()
    deadline = time.monotonic() + 60
    while not (created := [r for r in ui.runs("model_rollback") if r["dag_run_id"] not in before]):
        assert time.monotonic() < deadline, "the rollback form created no run"
        time.sleep(2)
    assert created[0]["conf"]["symbol"] == symbol and created[0]["conf"]["timeframe"] == timeframe, created[0]["conf"]
    ui.patch("/dags/model_rollback", {"is_paused": False})
    deadline = time.monotonic() + 300
    while (state := next(r for r in ui.runs("model_rollback") if r["dag_run_id"] == created[0]["dag_run_id"])["state"]
           ) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"the rollback run is still {state}"
        time.sleep(3)
    assert state == "success"

    page.goto(f"{ui.base}/mlops-models/model/{model}", wait_until="networkidle")
    last = page.locator("#timeline tr").last
    page.screenshot(path=str(SHOTS / "model-page-after-rollback.png"), full_page=True)
    cells = [c.inner_text() for c in last.locator("td").all()]
    # The trained model never passed the gate: the move needs force and a reason, and the trail says it was forced.
    assert cells[1:5] == ["champion", current, previous,
                          f"rollback from v{current} (forced: it never passed the gate): a look at the model"], cells
    assert "baseline: no model has beaten it yet" not in page.locator("h1 + nav + p").inner_text()  # a model serves


def test_a_failed_rollback_log_shows_its_fix_as_its_last_line_wrapped(ui: UI, page, demo_home: Path):
    """A rollback to a version that does not exist cannot succeed on retry: it fails at once, and its log in Airflow's
    task view ends, outside the collapsed "Post Execute" group and wrapped to the view's width, with the fix."""
    import sqlite3

    with sqlite3.connect(demo_home / "state.db") as db:
        model = db.execute("SELECT model FROM alias_moves WHERE alias = 'champion' ORDER BY id DESC").fetchone()[0]
    from market_mlops.ui.fleet import parse_model_name

    symbol, timeframe, horizon = parse_model_name(model)  # type: ignore[misc]
    run = ui.post("/dags/model_rollback/dagRuns", {"logical_date": None, "conf": {
        "symbol": symbol, "timeframe": timeframe, "horizon": horizon, "to_version": "999", "reason": "a test"}})
    ui.patch("/dags/model_rollback", {"is_paused": False})
    deadline = time.monotonic() + 300
    while (state := next(r for r in ui.runs("model_rollback") if r["dag_run_id"] == run["dag_run_id"])["state"]
           ) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"the rollback run is still {state}"
        time.sleep(3)
    assert state == "failed"
    ti = ui.api(f"/dags/model_rollback/dagRuns/{run['dag_run_id']}/taskInstances")["task_instances"][0]
    assert ti["try_number"] == 1, ti  # no retry of the hopeless

    page.goto(f"{ui.base}/dags/model_rollback/runs/{run['dag_run_id']}/tasks/rollback_champion",
              wait_until="networkidle")
    container = page.locator("[data-testid=virtual-scroll-container]")
    container.wait_for()
    container.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    page.wait_for_timeout(1000)
    items = page.locator("[data-testid^=virtualized-item-]")
    last = max(items.all(), key=lambda item: int(item.get_attribute("data-index") or -1))
    page.screenshot(path=str(SHOTS / "failed-rollback-log.png"), full_page=True)
    text = " ".join(last.inner_text().split())
    assert "what to do: " in text and "what to do: check that the MLflow server" not in text, text
    box, view = last.bounding_box(), container.bounding_box()
    assert box and view and box["width"] <= view["width"] + 1, (box, view)  # wrapped, not one 1,800-pixel line


def test_an_ingestion_run_by_the_ui_after_the_demo_reads_the_demos_source_and_merges(ui: UI, demo_home: Path):
    """`make ui` runs the DAGs with the settings the demo ran them with (its landing folder, its market): a run of
    the demo's last session triggered in the UI reads the landing drops and merges them (the same bars: nothing
    changes), where the synthetic source would have been refused as a restatement."""
    from market_mlops.dev.demo import CATCH_UP, _session_run_date

    when = (_session_run_date(CATCH_UP[1]) + dt.timedelta(minutes=15)).isoformat()
    for queued in [r for r in ui.runs("market_data_ingestion") if r["state"] == "queued"]:  # the forms' runs
        ui.patch(f"/dags/market_data_ingestion/dagRuns/{queued['dag_run_id']}", {"state": "failed"})
    run = ui.post("/dags/market_data_ingestion/dagRuns", {"logical_date": when, "conf": {"history_start": None}})
    ui.patch("/dags/market_data_ingestion", {"is_paused": False})
    deadline = time.monotonic() + 900
    while (state := next(r for r in ui.runs("market_data_ingestion")
                         if r["dag_run_id"] == run["dag_run_id"])["state"]) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"the ingestion run is still {state}"
        time.sleep(3)
    logs = demo_home / "airflow" / "logs" / "dag_id=market_data_ingestion" / f"run_id={run['dag_run_id']}"
    fetch = "\n".join(p.read_text() for p in logs.glob("task_id=fetch_bars/*.log"))
    assert state == "success", "\n".join(p.read_text()[-1500:] for p in logs.rglob("*.log"))
    assert f"for 1 session(s) ['{CATCH_UP[1].isoformat()}'] from source landing" in fetch, fetch[-2000:]


def test_a_model_page_reached_from_the_menu_shows_why_each_forecast_was_made(ui: UI, page, demo_home: Path):
    """The demo's drift checks explained each forecast of a model champion: its page, opened from Airflow's menu,
    shows each recent forecast's largest drivers, signed; a baseline champion's page says it follows its class mix."""
    import re
    import sqlite3

    with sqlite3.connect(demo_home / "state.db") as db:
        last = {m: (v, why) for m, v, why in db.execute("SELECT model, to_version, why FROM alias_moves WHERE alias = "
                                                        "'champion' ORDER BY id")}  # each model's champion now
        explained = [(m, v) for m, v in db.execute("SELECT model_name, model_version FROM forecast_drivers GROUP BY "
                                                    "model_name, model_version ORDER BY count(*) DESC")
                     if last.get(m, ("", ""))[0] == v]
    # (a series another test rolled back to its trained model is no longer served by its baseline)
    baseline = next(((m,) for m, (_v, why) in sorted(last.items()) if str(why).startswith("baseline: ")), None)
    assert explained, "no model champion of the demo has drivers"
    model = explained[0][0]
    page.goto(f"{ui.base}/", wait_until="networkidle")
    page.get_by_role("link", name="Models").or_(page.get_by_role("button", name="Models")).first.click()
    page.wait_for_url("**/plugin/models")
    frame = page.frame_locator("iframe").first
    frame.locator(f'#models tr[data-model="{model}"] td a').first.click()
    frame.locator("#forecasts").wait_for()
    page.screenshot(path=str(SHOTS / "model-page-drivers.png"), full_page=True)
    cells = [c.inner_text() for c in frame.locator("#forecasts td.drivers").all()]
    drivers = [c for c in cells if re.fullmatch(r"(\S+ [+-]\d\.\d{3}, ){4}\S+ [+-]\d\.\d{3}", c)]
    assert drivers and all(c in drivers or c in ("", "baseline: class mix") for c in cells), cells[:5]
    if baseline is not None:
        page.goto(f"{ui.base}/mlops-models/model/{baseline[0]}", wait_until="networkidle")
        page.locator("#forecasts").wait_for()
        texts = [c.inner_text() for c in page.locator("#forecasts td.drivers").all()]
        assert "baseline: class mix" in texts or not texts, texts[:5]


def test_retention_run_from_its_form_with_the_defaults_deletes_nothing(ui: UI, page, demo_home: Path):
    """The model_retention form submitted as it opens (a dry run by default), run by the scheduler: every data version
    and model version the demo left is still there, and the run says what it would have done."""
    import sqlite3

    from mlflow import MlflowClient

    def state() -> tuple[list[tuple], dict[str, set[str]]]:
        with sqlite3.connect(demo_home / "state.db") as db:
            versions = db.execute("SELECT md5, record FROM data_versions ORDER BY id").fetchall()
        client = MlflowClient(tracking_uri=ui.mlflow)
        archived = {m.name: {v.version for v in client.search_model_versions(f"name = '{m.name}'")
                             if v.tags.get("archived")} for m in client.search_registered_models()}
        return versions, archived

    before = state()
    for queued in [r for r in ui.runs("model_retention") if r["state"] == "queued"]:
        ui.patch(f"/dags/model_retention/dagRuns/{queued['dag_run_id']}", {"state": "failed"})
    known = {r["dag_run_id"] for r in ui.runs("model_retention")}
    page.goto(f"{ui.base}/dags/model_retention", wait_until="networkidle")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.locator("[role=dialog][data-state=open]")
    dialog.wait_for()
    unpause = dialog.get_by_role("checkbox")
    if unpause.count() and unpause.first.is_checked():
        dialog.get_by_text("Unpause").click()
    page.screenshot(path=str(SHOTS / "retention-form.png"), full_page=True)
    dialog.get_by_role("button", name="Trigger").click()
    deadline = time.monotonic() + 60
    while not (created := [r for r in ui.runs("model_retention") if r["dag_run_id"] not in known]):
        assert time.monotonic() < deadline, "the retention form created no run"
        time.sleep(2)
    assert created[0]["conf"].get("apply") in (False, None), created[0]["conf"]  # the form's default: a dry run
    ui.patch("/dags/model_retention", {"is_paused": False})
    deadline = time.monotonic() + 600
    while (run_state := next(r for r in ui.runs("model_retention")
                             if r["dag_run_id"] == created[0]["dag_run_id"])["state"]) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"the retention run is still {run_state}"
        time.sleep(3)
    ui.patch("/dags/model_retention", {"is_paused": True})
    assert run_state == "success"
    assert state() == before  # nothing collected, nothing archived


def test_a_drift_check_refused_for_stale_data_shows_on_the_models_page(ui: UI, page):
    """A drift check of a session the data do not reach fails (stale data, no retry); the Models page, opened from
    Airflow's menu, says so above the table."""
    for queued in [r for r in ui.runs("drift_check") if r["state"] == "queued"]:
        ui.patch(f"/dags/drift_check/dagRuns/{queued['dag_run_id']}", {"state": "failed"})
    run = ui.post("/dags/drift_check/dagRuns", {"logical_date": None, "conf": {}})  # today: no bars yet
    ui.patch("/dags/drift_check", {"is_paused": False})
    deadline = time.monotonic() + 600
    while (state := next(r for r in ui.runs("drift_check") if r["dag_run_id"] == run["dag_run_id"])["state"]
           ) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"the drift check is still {state}"
        time.sleep(3)
    ui.patch("/dags/drift_check", {"is_paused": True})
    assert state == "failed"
    page.goto(f"{ui.base}/", wait_until="networkidle")
    page.get_by_role("link", name="Models").or_(page.get_by_role("button", name="Models")).first.click()
    page.wait_for_url("**/plugin/models")
    frame = page.frame_locator("iframe").first
    frame.locator("#models").wait_for()
    page.screenshot(path=str(SHOTS / "models-page-failed-check.png"), full_page=True)
    banner = frame.locator("#failed-check").first.inner_text()
    assert "Stale data" in banner or "stale" in banner.lower(), banner
