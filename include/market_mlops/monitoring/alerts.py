"""Alerts: Slack through an Airflow connection, with an outbox in the suite's SQL store that never loses a message.

Every alert is written to the outbox first (table `alerts`, one row per alert, status `pending`), then delivered through the Slack connection named
in config (`alerts.slack_conn_id`: an incoming webhook `slackwebhook` or a bot token `slack` connection). With no
connection configured the alert stays in the task log and the outbox (status `no_connection`). Slack answering an
error is retried a few times; if it keeps failing the alert stays `pending` in the outbox, is retried on the next
send (by whichever host sends next), and the caller does not fail: an alert must never break the pipeline it
reports on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from market_mlops.config import PipelineConfig

log = logging.getLogger(__name__)

SEVERITY_EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


@dataclass
class Alert:
    title: str
    severity: str = "warning"  # info | warning | critical
    facts: dict[str, Any] = field(default_factory=dict)  # shown as a field table
    lines: list[str] = field(default_factory=list)  # extra bullet lines (e.g. top drifted features)
    links: dict[str, str] = field(default_factory=dict)  # label -> URL
    kind: str = "generic"  # drift | validation | promotion | rollback | failure | retrain

    @property
    def key(self) -> str:
        payload = json.dumps([self.kind, self.title, self.facts], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def text(self) -> str:
        facts = ", ".join(f"{k}={v}" for k, v in self.facts.items())
        return f"[{self.severity.upper()}] {self.title}" + (f" ({facts})" if facts else "")

    def blocks(self) -> list[dict[str, Any]]:
        """Slack Block Kit layout: header, a field table of facts, bullet lines, link buttons."""
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": f"{self.title}"[:150]}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"{SEVERITY_EMOJI.get(self.severity, '')} *{self.severity}* · {self.kind}"}],
            },
        ]
        if self.facts:
            fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in list(self.facts.items())[:10]]
            blocks.append({"type": "section", "fields": fields})
        if self.lines:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(f"• {x}" for x in self.lines)[:2900]}})
        if self.links:
            blocks.append(
                {
                    "type": "actions",
                    "elements": [
                        {"type": "button", "text": {"type": "plain_text", "text": label[:75]}, "url": url}
                        for label, url in list(self.links.items())[:5]
                    ],
                }
            )
        return blocks


class Outbox:
    """Every alert and its delivery status: one row per alert key in the SQL store, updated in place (a transactional
    outbox: `pending` until Slack took it, then `delivered`; `no_connection` when none is configured)."""

    def __init__(self, cfg: PipelineConfig | None = None) -> None:
        self.cfg = cfg

    def append(self, record: dict[str, Any]) -> None:
        from market_mlops.state import store, tables

        alert = record.get("alert", {})
        store.upsert(tables.alerts, [{
            "key": record["key"], "kind": str(alert.get("kind", "generic")), "title": str(alert.get("title", ""))[:500],
            "created": record["created"], "status": record["status"], "attempts": int(record.get("attempts", 0)),
            "record": json.loads(json.dumps(record, default=str))}], self.cfg)

    def records(self) -> list[dict[str, Any]]:
        from market_mlops.state import store, tables

        return store.records(tables.alerts, self.cfg)

    def latest(self) -> dict[str, dict[str, Any]]:
        return {record["key"]: record for record in self.records()}

    def pending(self) -> list[dict[str, Any]]:
        from market_mlops.state import store, tables

        return store.records(tables.alerts, self.cfg, status="pending")


def _slack_connection(conn_id: str) -> Connection | None:
    """The Airflow connection, or None when it is not configured (lookup through the Task SDK or the env)."""
    try:
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException, or no Airflow context at all
        log.info("slack connection %r not available (%s): alerts go to the outbox only", conn_id, exc.__class__.__name__)
        return None


def _post(conn: Connection, conn_id: str, text: str, blocks: list[dict[str, Any]]) -> None:
    if conn.conn_type == "slack":  # bot token: chat.postMessage to the channel in the connection's extra
        from airflow.providers.slack.hooks.slack import SlackHook

        channel = (conn.extra_dejson or {}).get("channel", "#mlops-alerts")
        SlackHook(slack_conn_id=conn_id).call("chat.postMessage", json={"channel": channel, "text": text, "blocks": blocks})
    else:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        SlackWebhookHook(slack_webhook_conn_id=conn_id).send(text=text, blocks=blocks)


def _deliver(conn: Connection, conn_id: str, record: dict[str, Any], outbox: Outbox, attempts: int, backoff_s: float) -> bool:
    last_error = ""
    for attempt in range(1, attempts + 1):
        try:
            _post(conn, conn_id, record["text"], record["blocks"])
            outbox.append({**record, "status": "delivered", "attempts": record.get("attempts", 0) + attempt, "at": _now()})
            return True
        except Exception as exc:  # Slack down or answering an error: keep it, never fail the caller
            last_error = f"{exc.__class__.__name__}: {str(exc)[:200]}"
            log.warning("slack delivery attempt %d/%d failed: %s", attempt, attempts, last_error)
            if attempt < attempts:
                time.sleep(backoff_s * attempt)
    outbox.append({**record, "status": "pending", "attempts": record.get("attempts", 0) + attempts, "error": last_error, "at": _now()})
    return False


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def send_alert(alert: Alert, *, conn_id: str | None = None, cfg: PipelineConfig | None = None,
               attempts: int = 3, backoff_s: float = 0.5) -> str:
    """Record and deliver an alert; returns its final status (delivered | pending | no_connection)."""
    from market_mlops.config import get_config

    cfg = cfg or get_config()
    conn_id = conn_id or cfg.alerts.slack_conn_id
    outbox = Outbox(cfg)
    record = {"key": alert.key, "created": _now(), "alert": asdict(alert), "text": alert.text(), "blocks": alert.blocks(), "attempts": 0}
    log.log(logging.INFO if alert.severity == "info" else logging.WARNING, "ALERT %s", alert.text())
    conn = _slack_connection(conn_id)
    if conn is None:
        outbox.append({**record, "status": "no_connection"})
        return "no_connection"
    outbox.append({**record, "status": "pending"})
    for earlier in outbox.pending():  # retry what an earlier Slack outage left behind
        if earlier["key"] != record["key"]:
            _deliver(conn, conn_id, earlier, outbox, attempts=1, backoff_s=0)
    return "delivered" if _deliver(conn, conn_id, record, outbox, attempts, backoff_s) else "pending"


def notify_task_failure(context: dict[str, Any]) -> None:
    """`on_failure_callback` for every DAG: the log's last line says why the task failed and what to do, and one
    alert names the task, the error, what to do and the log link."""
    from market_mlops.monitoring.failures import explaining_error, failure_line, what_to_do

    ti = context.get("ti") or context.get("task_instance")
    exc = context.get("exception")
    dag_id = getattr(ti, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    try_number = int(getattr(ti, "try_number", 1) or 1)
    facts = {"dag": dag_id, "task": task_id, "run": context.get("run_id", "?"), "try": try_number}
    error = explaining_error(exc) if exc else None
    reason = f"{error.__class__.__name__}: {error}" if error else "unknown error"
    links = {}
    log_url = getattr(ti, "log_url", None)
    if log_url:
        links["Task log"] = log_url
    lines = [reason[:500]] + ([f"what to do: {what_to_do(exc)}"] if exc else [])
    try:
        send_alert(Alert(title=f"Task failed: {dag_id}.{task_id}", severity="critical", facts=facts,
                         lines=lines, links=links, kind="failure"))
    except Exception:  # a broken alert path must not hide the original failure
        log.exception("could not record the failure alert")
    log.error("%s", failure_line(task_id, exc, try_number, _tries(ti, try_number), will_retry=False))
    for line in closing_lines(task_id, exc, will_retry=False):
        log.error("%s", line)


def note_task_retry(context: dict[str, Any]) -> None:
    """`on_retry_callback`: the log of a try Airflow will retry also ends with why it failed (no alert: the
    retry may succeed; the final failure alerts)."""
    from market_mlops.monitoring.failures import failure_line

    ti = context.get("ti") or context.get("task_instance")
    try_number = int(getattr(ti, "try_number", 1) or 1)
    log.warning("%s", failure_line(getattr(ti, "task_id", "?"), context.get("exception"), try_number,
                                   _tries(ti, try_number), will_retry=True))
    for line in closing_lines(getattr(ti, "task_id", "?"), context.get("exception"), will_retry=True):
        log.warning("%s", line)


def closing_lines(task: str, exc: BaseException | None, will_retry: bool) -> list[str]:
    """What a failed try's log shows last in Airflow's log view, outside its collapsed "Post Execute" group (the
    callbacks run inside it; `::endgroup::` closes it): what failed, in short, then what to do."""
    from market_mlops.monitoring.failures import explaining_error, what_to_do

    if exc is None:
        return []
    error = explaining_error(exc)
    message = " ".join(str(error).split())
    short = message if len(message) <= 400 else message[:397] + "..."
    fix = what_to_do(exc)
    return ["::endgroup::", f"{task} failed: {type(error).__name__}: {short}",
            f"what to do: {'Airflow retries it; if that fails too: ' if will_retry else ''}{fix}"]


def _tries(ti: Any, try_number: int) -> int:
    """Tries the task gets in all: its retries plus the first."""
    task = getattr(ti, "task", None)
    retries = getattr(task, "retries", None)
    return int(retries) + 1 if isinstance(retries, int) else max(try_number, int(getattr(ti, "max_tries", 0) or 0))
