"""Alerts reach a local Slack recorder on 127.0.0.1 through the Airflow connection; a failing Slack keeps them."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from market_mlops.monitoring.alerts import Alert, Outbox, send_alert

pytestmark = pytest.mark.integration


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                recorder.requests.append({"path": self.path, "body": json.loads(body)})
                self.send_response(recorder.status)
                self.end_headers()
                self.wfile.write(b"ok" if recorder.status == 200 else b"internal_error")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/XXXX"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def slack(monkeypatch, mlops_home):
    recorder = Recorder()
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", json.dumps({"conn_type": "slackwebhook", "password": recorder.url}))
    yield recorder
    recorder.server.shutdown()


def _alert(n: int = 1) -> Alert:
    return Alert(title=f"Accuracy emergency: AAA-d1-direction v{n}", severity="critical", kind="drift",
                 facts={"symbol": "AAA", "timeframe": "d1", "band": "emergency", "accuracy": 0.31, "baseline": 0.58},
                 lines=["rsi14: PSI 0.41, KS 0.33"], links={"Airflow run": "http://localhost:8080/dags/drift_check/runs/x",
                                                           "MLflow model": "http://localhost:5000/#/models/AAA-d1-direction/versions/1"})


def test_alert_reaches_slack_through_the_airflow_connection(slack, mlops_home):
    assert send_alert(_alert()) == "delivered"
    assert len(slack.requests) == 1
    body = slack.requests[0]["body"]
    assert slack.requests[0]["path"] == "/services/T000/B000/XXXX"
    assert "AAA-d1-direction" in body["text"]
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds[:2] == ["header", "context"] and "section" in kinds and "actions" in kinds
    fields = json.dumps(body["blocks"])
    assert "emergency" in fields and "rsi14" in fields and "MLflow model" in fields
    assert Outbox().latest()[_alert().key]["status"] == "delivered"


def test_slack_error_keeps_the_alert_and_a_later_send_delivers_it(slack, mlops_home):
    outbox = Outbox()
    slack.status = 500
    status = send_alert(_alert(1), attempts=2, backoff_s=0)  # must not raise
    assert status == "pending"
    assert len(slack.requests) == 2  # retried
    assert [r["key"] for r in outbox.pending()] == [_alert(1).key]

    slack.status = 200
    assert send_alert(_alert(2), backoff_s=0) == "delivered"
    assert outbox.pending() == []  # the earlier alert went out first
    titles = [r["body"]["text"] for r in slack.requests[2:]]
    assert any("v1" in t for t in titles) and any("v2" in t for t in titles)


def test_no_connection_means_log_and_outbox(mlops_home, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_SLACK_ALERTS", raising=False)
    assert send_alert(_alert()) == "no_connection"
    assert Outbox().records()[0]["status"] == "no_connection"
