"""Read a result's output wherever it travelled: inline, or claim-checked to file:// or gs://.

An output larger than the worker's inline limit (1 MB by default) is stored in object storage and the
result carries its URI (`output_uri`) instead. gs:// needs google-cloud-storage (the `gcs` extra) and
read access to the stack's bucket (roles/storage.objectViewer); STORAGE_EMULATOR_HOST is honoured.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from asyncinfer.core.contract import InferenceResult


class OutputUnavailableError(RuntimeError):
    """The output's URI cannot be read; the message names the URI and the fix."""


def read_output(result: InferenceResult) -> dict[str, Any] | None:
    """The output as a dict (inline or fetched from `output_uri`); None for an error result."""
    if result.output is not None:
        return result.output
    if result.output_uri is None:
        return None
    data = read_uri(result.output_uri)
    value = json.loads(data)
    if not isinstance(value, dict):
        raise OutputUnavailableError(f"{result.output_uri} holds JSON {type(value).__name__}, not an output object")
    return value


def read_uri(uri: str) -> bytes:
    if uri.startswith("file://"):
        try:
            return Path(uri.removeprefix("file://")).read_bytes()
        except OSError as exc:
            raise OutputUnavailableError(f"cannot read {uri}: {exc}") from exc
    if uri.startswith("gs://"):
        from google.api_core import exceptions as gexc

        bucket, _, name = uri.removeprefix("gs://").partition("/")
        try:
            return bytes(_storage_client().bucket(bucket).blob(name).download_as_bytes())
        except (gexc.NotFound, gexc.Forbidden) as exc:
            raise OutputUnavailableError(
                f"cannot read {uri}: {exc.message}; the reader needs roles/storage.objectViewer on gs://{bucket}"
            ) from exc
    raise OutputUnavailableError(f"output_uri {uri!r} is neither file:// nor gs://")


@functools.cache
def _storage_client() -> Any:
    try:
        from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:
        raise OutputUnavailableError(
            "gs:// outputs need google-cloud-storage: pip install 'asyncinfer-client[gcs]'"
        ) from exc
    return storage.Client()
