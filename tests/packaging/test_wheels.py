"""The product as a user gets it: wheels installed (not editable) outside the repository.

Builds every distribution's wheel, installs them into a fresh virtual environment, and runs a consumer
Pulumi program under mocks from a folder that has its own `components/` package and `worker.py`, the
names a Pulumi repository very often uses itself. Third-party dependencies come from the development
environment (this machine reaches no index in tests), added to the fresh environment's path by a .pth
file; asyncinfer itself comes only from the wheels.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.packaging.distributions import DISTRIBUTIONS, REPO, build_wheels

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_wheels(tmp_path_factory.mktemp("wheels"))


def test_every_distribution_builds_a_wheel(wheels: dict[str, Path]) -> None:
    assert set(wheels) == set(DISTRIBUTIONS)


def test_no_wheel_ships_the_namespace_init_or_foreign_top_levels(wheels: dict[str, Path]) -> None:
    for name, wheel in wheels.items():
        files = zipfile.ZipFile(wheel).namelist()
        assert "asyncinfer/__init__.py" not in files, f"{name} would shadow the asyncinfer namespace"
        top_levels = {f.split("/")[0] for f in files if not f.split("/")[0].endswith((".dist-info", ".data"))}
        expected = {"drawing_symbols"} if name == "drawing-symbols" else {"asyncinfer"}
        assert top_levels == expected, f"{name} installs top-level names {top_levels}"


def test_package_data_travels_in_the_wheels(wheels: dict[str, Path]) -> None:
    components = set(zipfile.ZipFile(wheels["asyncinfer-components"]).namelist())
    for needed in (
        "asyncinfer/components/boot/startup.sh",
        "asyncinfer/components/boot/shutdown.sh",
        "asyncinfer/components/bake/gpu-worker.pkr.hcl",
        "asyncinfer/components/bake/scripts/install-nvidia-driver.sh",
    ):
        assert needed in components
    assert "drawing_symbols/symbols.pt" in zipfile.ZipFile(wheels["drawing-symbols"]).namelist()
    for name, wheel in wheels.items():
        if name != "drawing-symbols":
            assert not [f for f in zipfile.ZipFile(wheel).namelist() if f.endswith(".pt")], f"weights in {name}"


def make_fresh_environment(where: Path, wheels: list[Path]) -> Path:
    """A venv outside the repository with these wheels installed (no editable, no dependencies)."""
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )
    # Third-party packages from the development environment, after the fresh site-packages.
    (purelib / "zz_third_party.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(purelib),
         *map(str, wheels)],
        check=True,
    )
    return python


def test_a_consumer_program_deploys_two_models_from_installed_wheels(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    python = make_fresh_environment(tmp_path, [wheels[n] for n in ("asyncinfer-core", "asyncinfer-components")])
    program_dir = tmp_path / "consumer"
    (program_dir / "components").mkdir(parents=True)
    (program_dir / "components" / "__init__.py").write_text("def team_labels():\n    return {'team': 'vision'}\n")
    (program_dir / "worker.py").write_text("ROLE = 'the consumer worker module'\n")
    shutil.copy(Path(__file__).with_name("consumer_program.py"), program_dir / "__main__.py")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PULUMI_CONFIG")}
    run = subprocess.run(
        [str(python), "__main__.py"], cwd=program_dir, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])

    # asyncinfer came from the fresh environment, not from the repository; the consumer's names survived.
    assert str(tmp_path / "venv") in report["asyncinfer_components_file"]
    assert not report["asyncinfer_components_file"].startswith(str(REPO))
    assert report["consumer_worker"] == "the consumer worker module"
    assert report["consumer_labels"] == {"team": "vision"}

    # Two models, no collision: every URN and every resource name is unique, each model has its own queue.
    assert len(report["urns"]) == len(set(report["urns"]))
    assert len(report["startup_scripts"]) >= 2
    assert len(set(report["topics"])) == len(report["topics"]), report["topics"]
    assert any(t.startswith("ocr-") for t in report["topics"]), report["topics"]
    assert any(t.startswith("symbols-") for t in report["topics"]), report["topics"]
    for model in ("ocr", "symbols"):
        scripts = [s for s in report["startup_scripts"] if f"ASYNCINFER_SUBSCRIPTION={model}-requests" in s]
        assert scripts, f"no startup script subscribes to {model}'s requests"
        # The tag is pinned to the digest the stack looked up (the mocks answer the lookup).
        assert all(f"consumer-project/models/{model}@sha256:" in s and "@@" not in s for s in scripts)
    assert all("docker stop" in s for s in report["shutdown_scripts"])
