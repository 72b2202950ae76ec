"""Claim-check storage for outputs too large for a message: file:// locally, gs:// in the cloud."""

from __future__ import annotations

from pathlib import Path


def write_blob(prefix: str, name: str, data: bytes) -> str:
    """Store `data` under `prefix` and return its URI."""
    if prefix.startswith("file://"):
        folder = Path(prefix.removeprefix("file://")).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_bytes(data)
        return f"file://{path}"
    if prefix.startswith("gs://"):
        from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]

        bucket, _, folder_name = prefix.removeprefix("gs://").partition("/")
        blob_name = f"{folder_name.rstrip('/')}/{name}" if folder_name else name
        storage.Client().bucket(bucket).blob(blob_name).upload_from_string(data)
        return f"gs://{bucket}/{blob_name}"
    raise ValueError(f"results_uri_prefix {prefix!r} must start with file:// or gs://")
