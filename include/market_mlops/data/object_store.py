"""S3 (MinIO in production) access: endpoint from config, credentials from the environment or an Airflow connection."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    S3Client = Any  # boto3 clients are generated at run time


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def connection_settings(login: str | None, password: str | None, extra: dict[str, Any]) -> dict[str, str]:
    """DVC's S3 remote settings from an Airflow AWS connection (login/password = key id/secret; extra as the Amazon
    provider reads it: endpoint_url, region_name, aws_session_token)."""
    settings = {"access_key_id": login or "", "secret_access_key": password or "",
                "session_token": extra.get("aws_session_token", ""), "region": extra.get("region_name", ""),
                "endpointurl": extra.get("endpoint_url", "")}
    return {k: v for k, v in settings.items() if v}


def s3_credentials() -> dict[str, str]:
    """Credentials for boto3 and DVC: AWS_* environment variables, else the Airflow connection MLOPS_S3_CONN_ID
    (an `aws` connection: key id, secret, and from its extra the endpoint, region and session token)."""
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        return {}
    conn_id = os.environ.get("MLOPS_S3_CONN_ID")
    if not conn_id:
        return {}
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    return connection_settings(conn.login, conn.password, conn.extra_dejson)


def s3_client() -> S3Client:
    import boto3

    from market_mlops.config import get_config

    creds = s3_credentials()
    return boto3.client(
        "s3",
        endpoint_url=get_config().storage.s3_endpoint_url or creds.get("endpointurl"),
        aws_access_key_id=creds.get("access_key_id"),
        aws_secret_access_key=creds.get("secret_access_key"),
        aws_session_token=creds.get("session_token"),
        region_name=creds.get("region"),
    )


def list_s3(prefix_uri: str) -> list[str]:
    bucket, prefix = split_s3_uri(prefix_uri)
    paginator = s3_client().get_paginator("list_objects_v2")
    return [f"s3://{bucket}/{obj['Key']}" for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])]


def read_bytes(uri: str) -> bytes:
    """An object (s3://...) or a local file."""
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        return bytes(s3_client().get_object(Bucket=bucket, Key=key)["Body"].read())
    from pathlib import Path

    return Path(uri).read_bytes()


def read_bytes_if_exists(uri: str) -> bytes | None:
    """An object or a local file, or None when there is none (any other failure raises)."""
    if uri.startswith("s3://"):
        from botocore.exceptions import ClientError

        bucket, key = split_s3_uri(uri)
        try:
            return bytes(s3_client().get_object(Bucket=bucket, Key=key)["Body"].read())
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
    from pathlib import Path

    path = Path(uri)
    return path.read_bytes() if path.exists() else None


def write_bytes(uri: str, data: bytes) -> None:
    """An object PUT (atomic by nature) or an atomic local write."""
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        s3_client().put_object(Bucket=bucket, Key=key, Body=data)
        return
    from pathlib import Path

    from market_mlops.data.storage import write_bytes_atomic

    write_bytes_atomic(data, Path(uri))


def list_under(prefix: str) -> list[str]:
    """Every object or file below `prefix`, as URIs or paths."""
    if prefix.startswith("s3://"):
        return sorted(list_s3(prefix.rstrip("/") + "/"))
    from pathlib import Path

    root = Path(prefix)
    return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []
