"""Which NVIDIA driver a worker image's CUDA version needs, checked at config time and at boot.

A CUDA runtime refuses to start on a driver older than the one its toolkit release was built
against ("CUDA driver version is insufficient for CUDA runtime version"): a worker image on CUDA
12.8 on a VM baked with the 550 branch loads no model at all. The table is NVIDIA's "CUDA Toolkit
and Corresponding Driver Versions" (CUDA Toolkit Release Notes, Table 3, Linux x86_64, the GA
release of each minor version; https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/), copied
2026-11-25. docs/COMPONENTS.md ("Boot, bake and storage") repeats it.
"""

from __future__ import annotations

#: CUDA major.minor -> minimum Linux x86_64 driver version of that toolkit release (GA).
MIN_DRIVER_FOR_CUDA: dict[str, str] = {
    "11.8": "520.61.05",
    "12.0": "525.60.13",
    "12.1": "530.30.02",
    "12.2": "535.54.03",
    "12.3": "545.23.06",
    "12.4": "550.54.14",
    "12.5": "555.42.02",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
}
#: The CUDA version of images/worker.Dockerfile's base image (pytorch/pytorch:...-cuda12.8-...).
DEFAULT_IMAGE_CUDA = "12.8"
#: The driver branch baked by default: the newest branch whose minimum covers DEFAULT_IMAGE_CUDA.
DEFAULT_DRIVER_BRANCH = "570"


class DriverMismatchError(ValueError):
    """The driver branch cannot run the worker image's CUDA version; names both and the fix."""


def min_driver(cuda: str) -> str:
    """The minimum driver version for a CUDA major.minor, or a clear error for one not in the table."""
    try:
        return MIN_DRIVER_FOR_CUDA[cuda]
    except KeyError:
        known = ", ".join(MIN_DRIVER_FOR_CUDA)
        raise DriverMismatchError(
            f"CUDA {cuda!r} is not in the driver table (known: {known}); give the worker image's CUDA "
            "major.minor, or add its row from NVIDIA's release notes to asyncinfer.components.gpu_driver."
        ) from None


def min_branch(cuda: str) -> int:
    """The lowest driver branch (major version) that carries the minimum driver for `cuda`."""
    return int(min_driver(cuda).split(".", 1)[0])


def check_driver_branch(branch: str, cuda: str) -> None:
    """Refuse a driver branch older than what the image's CUDA needs."""
    needed = min_branch(cuda)
    if int(branch) < needed:
        raise DriverMismatchError(
            f"asyncinfer:driverBranch {branch} cannot run the worker image's CUDA {cuda} (needs driver >= "
            f"{min_driver(cuda)}, branch {needed} or newer); set asyncinfer:driverBranch to {needed} or newer, "
            "or asyncinfer:imageCudaVersion to the CUDA version the image really uses."
        )
