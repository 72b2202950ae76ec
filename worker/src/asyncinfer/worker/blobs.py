"""Claim-check storage for outputs too large for a message: file:// locally, gs:// in the cloud.

On a VM the worker's service account has roles/storage.objectCreator on the stack's bucket and
nothing more: it may create an object, never overwrite or delete one. So an object is written only
if it does not exist yet (`if_generation_match=0`); a redelivered request whose output is already
there gets the existing object's URI, which holds the answer to the same request id.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from asyncinfer.worker.errors import TransientError


def write_blob(prefix: str, name: str, data: bytes) -> str:
    """Store `data` under `prefix` and return its URI."""
    if prefix.startswith("file://"):
        folder = Path(prefix.removeprefix("file://")).resolve()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_bytes(data)
        except PermissionError as exc:
            raise TransientError(
                f"results_uri_prefix {prefix} is not writable by this process ({exc}); point "
                "ASYNCINFER_RESULTS_URI_PREFIX at a writable folder or a gs:// bucket"
            ) from exc
        return f"file://{path}"
    if prefix.startswith("gs://"):
        return _write_gcs(prefix, name, data)
    raise ValueError(f"results_uri_prefix {prefix!r} must start with file:// or gs://")


@functools.cache
def storage_client() -> Any:
    """One client per process: each one opens its own connection pool and reads credentials."""
    try:
        from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:
        raise TransientError("gs:// needs google-cloud-storage in the worker image (extra `gcs`)") from exc
    return storage.Client()


def _write_gcs(prefix: str, name: str, data: bytes) -> str:
    from google.api_core import exceptions as gexc

    bucket, _, folder_name = prefix.removeprefix("gs://").partition("/")
    blob_name = f"{folder_name.rstrip('/')}/{name}" if folder_name else name
    uri = f"gs://{bucket}/{blob_name}"
    try:
        storage_client().bucket(bucket).blob(blob_name).upload_from_string(
            data, content_type="application/json", if_generation_match=0
        )
    except gexc.PreconditionFailed:
        pass  # written by an earlier delivery of the same request: that object is the answer
    except gexc.Forbidden as exc:
        raise TransientError(f"the worker may not create objects in gs://{bucket}: {exc.message}") from exc
    return uri
