"""Model versions the pipeline signed: who may move a champion is whoever holds the signing key, not whoever
reaches the MLflow port.

When the pipeline registers a version it signs (HMAC-SHA256) the model name, its run, its files' sha256 checksums and
its lineage tags, with a key nobody else holds (`MLOPS_SIGNING_KEYS`, or the password of the Airflow connection
`MLOPS_SIGNING_CONN_ID` with earlier keys in its extra `{"previous": [...]}`). Every load checks that signature
before a byte of the model is deserialized: a version registered by anyone else is refused, even when its checksums
agree with the files it points at (the intruder writes those too). Rotation: the first key signs; versions signed
with any listed key stay loadable until that key is removed from the list.
Without any key configured (the embedded stack), versions are neither signed nor checked; production sets one
(`market-mlops secrets check` requires it in compose).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

SIGNATURE_TAG = "signature.hmac_sha256"
KEY_ID_TAG = "signature.key_id"
FIELDS_TAG = "signature.fields"  # the version's lineage tags that are signed, comma-separated


class UnsignedVersion(RuntimeError):
    """A version whose signature is missing or does not verify with any accepted key."""

    retryable = False  # a retry cannot fix it: the task fails at once (orchestration.fail_now_when_permanent)
    hint = ('register versions only through model_retrain (it signs them), or add the key that signed it to '
            'MLOPS_SIGNING_KEYS; meanwhile roll back to a signed version (model_rollback)')


@dataclass(frozen=True)
class SigningKeys:
    keys: tuple[bytes, ...]  # the first signs; all verify

    @property
    def enabled(self) -> bool:
        return bool(self.keys)


def key_id(key: bytes) -> str:
    """Names a key without revealing it (which key signed a version, for rotation)."""
    return hashlib.sha256(b"market-mlops key id:" + key).hexdigest()[:12]


def keys_from(values: list[str]) -> SigningKeys:
    return SigningKeys(tuple(v.strip().encode() for v in values if v.strip()))


def configured_keys() -> SigningKeys:
    """MLOPS_SIGNING_KEYS (comma-separated, the first signs), else the Airflow connection MLOPS_SIGNING_CONN_ID."""
    listed = os.environ.get("MLOPS_SIGNING_KEYS", "")
    if listed.strip():
        return keys_from(listed.split(","))
    conn_id = os.environ.get("MLOPS_SIGNING_CONN_ID")
    if not conn_id:
        return SigningKeys(())
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    return keys_from([conn.password or "", *conn.extra_dejson.get("previous", [])])


def payload(name: str, run_id: str, checksums: Mapping[str, str], lineage: Mapping[str, str]) -> bytes:
    """The signed bytes: canonical JSON of what a load trusts."""
    return json.dumps({"model": name, "run_id": run_id, "sha256": dict(sorted(checksums.items())),
                       "lineage": dict(sorted(lineage.items()))}, sort_keys=True, separators=(",", ":")).encode()


def signature_tags(keys: SigningKeys, name: str, run_id: str, checksums: Mapping[str, str],
                   lineage: Mapping[str, str]) -> dict[str, str]:
    """The tags that sign a new version (none when no key is configured)."""
    if not keys.enabled:
        return {}
    key = keys.keys[0]
    digest = hmac.new(key, payload(name, run_id, checksums, lineage), hashlib.sha256).hexdigest()
    return {SIGNATURE_TAG: digest, KEY_ID_TAG: key_id(key), FIELDS_TAG: ",".join(sorted(lineage))}


def verify(keys: SigningKeys, name: str, version: str, run_id: str, checksums: Mapping[str, str],
           version_tags: Mapping[str, str]) -> None:
    """Raise UnsignedVersion (one line) unless the version's signature verifies with an accepted key."""
    if not keys.enabled:
        return
    where = f"{name} v{version}"
    signature = version_tags.get(SIGNATURE_TAG)
    if not signature:
        raise UnsignedVersion(f"{where} was not signed by the pipeline (no {SIGNATURE_TAG} tag): refusing to load "
                              "it; register models through the retrain DAG, which signs them")
    fields = [f for f in version_tags.get(FIELDS_TAG, "").split(",") if f]
    lineage = {f: version_tags.get(f, "") for f in fields}
    signed = payload(name, run_id, checksums, lineage)
    for key in keys.keys:
        if key_id(key) == version_tags.get(KEY_ID_TAG) and hmac.compare_digest(
                hmac.new(key, signed, hashlib.sha256).hexdigest(), signature):
            return
    known = version_tags.get(KEY_ID_TAG, "?") in {key_id(k) for k in keys.keys}
    raise UnsignedVersion(
        f"{where}: signature does not verify "
        + ("(its run, checksums or lineage tags changed since it was signed)" if known else
           f"(signed with key {version_tags.get(KEY_ID_TAG, '?')}, which is not among the accepted keys; keep a "
           "rotated key in the list while its versions must load)")
        + ": refusing to load it")
