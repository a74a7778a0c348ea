"""Uploads to the tracking server's proxied artifact store (`mlflow-artifacts:`), a folder's files side by side.

MLflow's own repository for that scheme uploads a folder one file after another, one authenticated HTTP request
each: a version's run files and its pyfunc model are about 25 files, and 25 round trips through the server to S3
cost 0.5 s of a 1 s logging budget (measured against the compose stack's MLflow with basic-auth and moto S3). This
class is registered for the scheme through MLflow's artifact-repository plugin entry point (pyproject.toml), so every
upload of the suite (run files, logged models, drift reports) goes through it; anything else is MLflow's own code.
"""

from __future__ import annotations

import os
import posixpath

from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository
from mlflow.utils.file_utils import relative_path_to_artifact_path

UPLOAD_THREADS = 4  # requests in flight: a 2-core server answers about that many at once; more only queue


def folder_uploads(local_dir: str, artifact_path: str | None) -> list[tuple[str, str | None]]:
    """(local file, artifact folder) of every file under `local_dir`, in the layout MLflow's `log_artifacts` gives."""
    local_dir = os.path.abspath(local_dir)
    out = []
    for root, _, names in os.walk(local_dir):
        if root == local_dir:
            folder = artifact_path
        else:
            rel = relative_path_to_artifact_path(os.path.relpath(root, local_dir))
            folder = posixpath.join(artifact_path, rel) if artifact_path else rel
        out += [(os.path.join(root, name), folder) for name in sorted(names)]
    return out


class ParallelUploadRepository(MlflowArtifactsRepository):
    """`MlflowArtifactsRepository` whose `log_artifacts` sends a folder's files concurrently (each file is still one
    PUT, with MLflow's own retries); the first failure is raised after the others finished."""

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=UPLOAD_THREADS, thread_name_prefix="mlops-upload") as pool:  # started as needed
            futures = [pool.submit(self.log_artifact, file, folder) for file, folder in folder_uploads(local_dir, artifact_path)]
        for future in futures:
            future.result()
