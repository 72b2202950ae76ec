"""The repository's distributions, their wheels and their dependency closures."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: distribution name -> its folder in the repository
DISTRIBUTIONS: dict[str, str] = {
    "asyncinfer-core": "core",
    "asyncinfer-client": "client",
    "asyncinfer-worker": "worker",
    "asyncinfer-components": "components",
    "asyncinfer-tools": "tools",
    "drawing-symbols": "examples/symbols",
}


def build_wheels(out: Path) -> dict[str, Path]:
    """One wheel per distribution, built from the working tree with this environment's setuptools."""
    for folder in DISTRIBUTIONS.values():
        # setuptools builds in place: a stale build/lib would put deleted modules back into the wheel.
        shutil.rmtree(REPO / folder / "build", ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir",
         str(out), *(str(REPO / folder) for folder in DISTRIBUTIONS.values())],
        check=True, cwd=REPO,
    )
    wheels: dict[str, Path] = {}
    for wheel in out.glob("*.whl"):
        name = normalise(wheel.name.split("-")[0])
        wheels[name] = wheel
    return wheels


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> tuple[str, list[str], bool]:
    """(name, extras, applies-unconditionally) of a Requires-Dist line."""
    spec, _, marker = requirement.partition(";")
    match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(\[[^\]]*\])?", spec)
    assert match, requirement
    extras = [e.strip() for e in (match.group(2) or "").strip("[]").split(",") if e.strip()]
    return normalise(match.group(1)), extras, "extra ==" not in marker


def closure(root: str, extras: tuple[str, ...] = ()) -> set[str]:
    """Every distribution `pip install root[extras]` would install, from installed metadata."""
    seen: set[str] = set()
    pending: list[tuple[str, tuple[str, ...]]] = [(normalise(root), extras)]
    while pending:
        name, wanted = pending.pop()
        key = name
        if key in seen and not wanted:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            dep, dep_extras, unconditional = requirement_name(requirement)
            marker = requirement.partition(";")[2]
            in_wanted_extra = any(re.search(rf"extra\s*==\s*['\"]{e}['\"]", marker) for e in wanted)
            platform_only = "python_version" in marker or "sys_platform" in marker
            applies = (unconditional and not platform_only) or in_wanted_extra
            if applies and dep not in seen:
                pending.append((dep, tuple(dep_extras)))
    return seen
