"""The published contract: JSON Schema files generated from the pydantic models in `contract.py`.

The files under `asyncinfer/core/schemas/` are committed and shipped with the package, so a team that
submits from Go, Java or a shell script reads one file instead of this repository's Python. They are
generated, never edited by hand:

    python -m asyncinfer.core.contract_schema            # rewrite the files
    python -m asyncinfer.core.contract_schema --check    # exit 1 when they differ from the models

A test runs the check, so a change to the models that is not regenerated fails the build.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from asyncinfer.core.contract import SCHEMA_VERSION, InferenceRequest, InferenceResult

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: file name -> (model, mode). A request is validated as a client sends it; a result is described as
#: the worker serialises it (what a reader of the results topic receives).
SCHEMA_FILES: dict[str, tuple[type[BaseModel], Literal["validation", "serialization"]]] = {
    "request.schema.json": (InferenceRequest, "validation"),
    "result.schema.json": (InferenceResult, "serialization"),
}


def schema_dir() -> Path:
    """The folder of the committed files, inside the installed (or editable) package."""
    return Path(str(resources.files("asyncinfer.core") / "schemas"))


def build_schema(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict[str, Any]:
    schema = model.model_json_schema(mode=mode)
    return {
        "$schema": SCHEMA_DIALECT,
        # A URN, not a URL: nothing is served at an address, the file itself is the contract.
        "$id": f"urn:asyncinfer:schema:v{SCHEMA_VERSION}:{model.__name__}",
        **schema,
    }


def render() -> dict[str, str]:
    """Every schema file's exact text, as it must be committed."""
    return {
        name: json.dumps(build_schema(model, mode), indent=2, ensure_ascii=False) + "\n"
        for name, (model, mode) in SCHEMA_FILES.items()
    }


def stale_files(folder: Path) -> list[str]:
    """Names of the files in `folder` that are missing or differ from what the models generate."""
    return [
        name
        for name, text in render().items()
        if not (folder / name).is_file() or (folder / name).read_text(encoding="utf-8") != text
    ]


def write(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (folder / name).write_text(text, encoding="utf-8")
    return sorted(SCHEMA_FILES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m asyncinfer.core.contract_schema", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file is stale")
    parser.add_argument("--dir", type=Path, default=None, help="the schema folder (default: the package's own)")
    args = parser.parse_args(argv)
    folder = args.dir or schema_dir()
    if args.check:
        stale = stale_files(folder)
        for name in stale:
            print(f"{folder / name} is stale; regenerate with `python -m asyncinfer.core.contract_schema`")
        return 1 if stale else 0
    for name in write(folder):
        print(f"wrote {folder / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
