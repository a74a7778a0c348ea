"""Helpers of the tiers that start servers: a free port, waiting for an HTTP answer, Airflow's REST API with a token."""

from __future__ import annotations

import json
import socket
import urllib.request

from market_mlops.dev.ui import wait_for_http  # noqa: F401  (the tiers import it from here)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class AirflowRest:
    """Airflow's REST API (v2) as user admin, with the token the simple auth manager issues."""

    def __init__(self, base: str, password: str) -> None:
        self.base, self.password, self.token = base, password, ""

    def __call__(self, method: str, path: str, body: dict | None = None) -> dict:
        if not self.token:
            req = urllib.request.Request(f"{self.base}/auth/token", method="POST",
                                         data=json.dumps({"username": "admin", "password": self.password}).encode(),
                                         headers={"Content-Type": "application/json"})
            self.token = json.loads(urllib.request.urlopen(req, timeout=10).read())["access_token"]
        req = urllib.request.Request(f"{self.base}/api/v2{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=30).read() or b"{}")
