"""mypy resolves asyncinfer's packages from each other: a type error across a package boundary is caught.

If a package were not found (or were found only through an import hook mypy cannot follow), its names
would silently be Any and this deliberate error would pass unnoticed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.packaging.distributions import REPO

WRONG = '''
from asyncinfer.client import AsyncInferClient
from asyncinfer.components.testing import RecordedResource
from asyncinfer.core.policy import ScalingPolicy

policy_name: int = ScalingPolicy.__name__
resource_urn: int = RecordedResource.urn
client_close: int = AsyncInferClient.close
'''


def test_mypy_checks_types_across_package_boundaries(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(WRONG)
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), str(probe)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    mismatches = {line.split(":")[1] for line in run.stdout.splitlines() if "Incompatible types in assignment" in line}
    # One per line 6-8: each cross-package name had its real type (str, str, a method), not Any.
    assert mismatches == {"6", "7", "8"}, run.stdout + run.stderr
    assert "import-not-found" not in run.stdout and "import-untyped" not in run.stdout, run.stdout
