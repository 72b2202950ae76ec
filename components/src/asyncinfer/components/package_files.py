"""Files that ship inside this package: the VM's boot scripts and the Packer bake.

Read through importlib.resources, so they are found wherever the package is installed (a wheel in
site-packages, an editable checkout), never relative to a git checkout.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def package_dir(name: str) -> Path:
    """A folder of package data as a real path (Packer reads the bake folder from disk)."""
    traversable = resources.files("asyncinfer.components") / name
    path = Path(str(traversable))
    if not path.is_dir():
        raise FileNotFoundError(
            f"asyncinfer.components has no {name}/ folder at {path}; reinstall asyncinfer-components "
            "from a wheel or source tree (zip imports are not supported)"
        )
    return path


def boot_script(name: str) -> str:
    """The text of a VM boot script (startup.sh, shutdown.sh)."""
    return boot_file(name)


def boot_file(name: str) -> str:
    """The text of a file the VM gets at boot (the scripts, the Ops Agent configuration)."""
    return (resources.files("asyncinfer.components") / "boot" / name).read_text(encoding="utf-8")


#: The Packer template and its provisioning scripts.
BAKE_DIR_NAME = "bake"
