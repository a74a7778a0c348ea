"""Refuse to start a production service with a secret that is missing, too short, or a placeholder.

`market-mlops secrets check` runs first in `airflow-init` and in the MLflow service (docker-compose.yaml): it reads
the secrets those services get from `.env` through the environment (directly, or as the password inside a database
URL) and stops the container with one line naming the variable and how to make a good value. Pure functions of the
environment: no Airflow, no network.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

# What `.env.example` ships (anything starting with these) and what people type when asked for a password.
PLACEHOLDER_PREFIXES = ("change-me", "changeme", "change_me")
PLACEHOLDERS = {"password", "secret", "admin", "minioadmin", "airflow", "mlflow", "postgres", "example", "xxx", "todo"}


@dataclass(frozen=True)
class Rule:
    variable: str
    min_length: int
    how: str  # how to make a good value
    fernet: bool = False
    in_url: bool = False  # the secret is the password of a database URL
    listed: bool = False  # comma-separated secrets: each is checked (the first is the one in use)


RULES = (
    Rule("AIRFLOW__CORE__FERNET_KEY", 44, "AIRFLOW_FERNET_KEY: python -c \"from cryptography.fernet import Fernet; "
         "print(Fernet.generate_key().decode())\"", fernet=True),
    Rule("AIRFLOW__API_AUTH__JWT_SECRET", 32, "AIRFLOW_JWT_SECRET: openssl rand -hex 32"),
    Rule("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", 16, "POSTGRES_PASSWORD: openssl rand -base64 24 | tr -d '/+='", in_url=True),
    Rule("MLFLOW_BACKEND_STORE_URI", 16, "POSTGRES_PASSWORD: openssl rand -base64 24 | tr -d '/+='", in_url=True),
    Rule("AWS_SECRET_ACCESS_KEY", 16, "MINIO_PIPELINE_PASSWORD: openssl rand -base64 24 | tr -d '/+='"),
    Rule("AIRFLOW_ADMIN_PASSWORD", 12, "AIRFLOW_ADMIN_PASSWORD: a password of 12 characters or more"),
    Rule("MLFLOW_AUTH_ADMIN_PASSWORD", 16, "MLFLOW_ADMIN_PASSWORD: openssl rand -base64 24 | tr -d '/+='"),
    Rule("MLFLOW_FLASK_SERVER_SECRET_KEY", 32, "MLFLOW_FLASK_SECRET_KEY: openssl rand -hex 32"),
    Rule("MLFLOW_TRACKING_PASSWORD", 16, "MLOPS_MLFLOW_PASSWORD: openssl rand -base64 24 | tr -d '/+='"),
    Rule("MLOPS_SIGNING_KEYS", 32, "MLOPS_SIGNING_KEYS: openssl rand -hex 32 (comma-separated when rotating: the new "
         "key first)", listed=True),
)


def _is_placeholder(value: str) -> bool:
    lowered = value.lower()
    return lowered.startswith(PLACEHOLDER_PREFIXES) or lowered in PLACEHOLDERS


def _fernet_ok(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode())) == 32
    except (binascii.Error, ValueError):
        return False


def problem(rule: Rule, value: str | None) -> str | None:
    """What is wrong with one secret, in words, or None."""
    if value is not None and rule.listed:
        found = [problem(Rule(rule.variable, rule.min_length, rule.how), v.strip()) for v in value.split(",")]
        return next((f for f in found if f), None)
    if value is not None and rule.in_url:
        value = urlsplit(value.split("+", 1)[-1] if "://" in value else value).password
        if value is None:
            return f"{rule.variable} has no password in its URL"
    if not value:
        return f"{rule.variable} is empty"
    if _is_placeholder(value):
        return f"{rule.variable} is a placeholder ({value[:12]!r}...)"
    if len(value) < rule.min_length:
        return f"{rule.variable} is {len(value)} characters, fewer than {rule.min_length}"
    if rule.fernet and not _fernet_ok(value):
        return f"{rule.variable} is not a Fernet key (32 url-safe base64 bytes)"
    return None


def check(environ: Mapping[str, str], required: tuple[str, ...] = ()) -> list[str]:
    """One line per bad secret among those set in `environ` (and those in `required`, set or not)."""
    lines = []
    for rule in RULES:
        if rule.variable in environ or rule.variable in required:
            found = problem(rule, environ.get(rule.variable))
            if found:
                lines.append(f"{found}: set {rule.how} in .env")
    return lines
