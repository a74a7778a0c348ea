"""Who may write to MLflow: the server runs MLflow's basic-auth app; people are read-only by default and the
pipeline has an account of its own (it creates the suite's experiments and registered models, so it manages them).

Production wiring (docker-compose.yaml): the `mlflow` service writes its auth config from the environment
(`auth_config`, the user database is a PostgreSQL URL with a password, so not a committed file) and starts
`mlflow server --app-name basic-auth`; the one-shot `mlflow-init` creates or updates the pipeline account
(`ensure_user`) with the admin password; every Airflow service authenticates with MLFLOW_TRACKING_USERNAME/PASSWORD,
which the MLflow client reads itself.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

ADMIN = "admin"


class AccountError(RuntimeError):
    """The MLflow server refused or could not be reached while setting up accounts."""

    hint = ('check that the MLflow server answers and the admin password (MLFLOW_AUTH_ADMIN_PASSWORD) is '
            'right, then run it again')


def auth_config(database_uri: str, default_permission: str = "READ", credential_cache_seconds: int = 60) -> str:
    """The basic-auth app's ini: the user store, what a user may do on what they did not create (people: READ), the
    admin's name (its password comes from MLFLOW_AUTH_ADMIN_PASSWORD, never from the file), and how long a checked
    password is remembered: without that cache every request pays a PBKDF2 hash, and a retrain of four models took
    6 minutes instead of 1 in the cluster tier (a changed password reaches the other server workers within it)."""
    if default_permission not in {"READ", "EDIT", "MANAGE", "NO_PERMISSIONS"}:
        raise ValueError(f"default permission {default_permission!r}: use READ, EDIT, MANAGE or NO_PERMISSIONS")
    return "\n".join(["[mlflow]", f"default_permission = {default_permission}", f"database_uri = {database_uri}",
                      f"admin_username = {ADMIN}", "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
                      f"auth_cache_ttl_seconds = {credential_cache_seconds}", ""])


def write_auth_config(path: Path, database_uri: str, default_permission: str = "READ") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(auth_config(database_uri, default_permission))
    path.chmod(0o600)
    return path


def _call(base: str, method: str, path: str, body: dict[str, str], user: str, password: str) -> int:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req = urllib.request.Request(f"{base.rstrip('/')}/api/2.0/mlflow/{path}", method=method,
                                 data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError as exc:
        raise AccountError(f"MLflow at {base} unreachable ({exc}); is the mlflow service up?") from None


def ensure_user(base: str, admin_password: str, username: str, password: str) -> str:
    """Create `username` (or set its password when it exists): idempotent, so a rerun of mlflow-init is safe.
    Returns "created" or "updated"."""
    status = _call(base, "POST", "users/create", {"username": username, "password": password}, ADMIN, admin_password)
    if status == 200:
        return "created"
    if status == 401:
        raise AccountError(f"MLflow at {base} refused the admin credentials: check MLFLOW_ADMIN_PASSWORD")
    updated = _call(base, "PATCH", "users/update-password", {"username": username, "password": password}, ADMIN,
                    admin_password)
    if updated != 200:
        raise AccountError(f"MLflow at {base}: creating user {username} answered {status}, updating its password "
                           f"{updated}")
    return "updated"
