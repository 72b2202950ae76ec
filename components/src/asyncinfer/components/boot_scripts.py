"""The worker VM's startup and shutdown scripts, rendered from the templates in `boot/`.

`worker_pool` puts them into the instance template's metadata; tests/boot runs exactly what these
functions return with bash, so the scripts that are tested are the scripts that ship.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from asyncinfer.components.gpu_driver import DEFAULT_IMAGE_CUDA, min_driver
from asyncinfer.components.package_files import boot_file, boot_script
from asyncinfer.core import gce

#: Spot preemption leaves about 30 s between the ACPI signal and the power-off.
PREEMPTION_NOTICE_S = gce.SPOT_NOTICE_S
#: `docker stop -t`: SIGTERM, then SIGKILL after this long; the worker's drain bound stays below it.
STOP_TIMEOUT_S = gce.STOP_TIMEOUT_S
#: The shutdown script's own bound on `docker stop` (2 s of metadata query before it, 1 s of kill
#: grace after it): the script ends before the power-off even if dockerd hangs.
SHUTDOWN_BUDGET_S = PREEMPTION_NOTICE_S - 4
DEFAULT_HEALTH_PORT = 8080


class BootScriptError(ValueError):
    """A value that cannot go into a boot script; names it and the fix."""


def render_script(template: str, values: Mapping[str, str]) -> str:
    text = template
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    left = re.findall(r"@@[A-Z_]+@@", text)
    if left:
        raise BootScriptError(f"script template still has placeholders {left}; the renderer and template disagree.")
    return text


def render_env_file(env: Mapping[str, str]) -> str:
    for key, value in env.items():
        if "\n" in value or "\n" in key:
            raise BootScriptError(f"worker env {key!r} has a newline; docker env files are one line per variable.")
    return "\n".join(f"{k}={v}" for k, v in env.items())


def ops_agent_config() -> str:
    """The Ops Agent's logging pipeline for the worker container (boot/ops-agent.yaml)."""
    return boot_file("ops-agent.yaml").rstrip("\n")


def render_startup_script(worker_image: str, env: Mapping[str, str], *, image_cuda: str = DEFAULT_IMAGE_CUDA) -> str:
    """The startup script for a worker running `worker_image` (a digest-pinned reference runs as is;
    a tag is resolved to a digest at each boot) with the ASYNCINFER_* environment `env`."""
    health_port = env.get("ASYNCINFER_HEALTH_PORT", str(DEFAULT_HEALTH_PORT))
    if not health_port.isdigit() or not 0 < int(health_port) < 65536:
        raise BootScriptError(f"ASYNCINFER_HEALTH_PORT {health_port!r} must be a port number 1-65535 on a VM.")
    return render_script(
        boot_script("startup.sh"),
        {
            "WORKER_IMAGE": shlex.quote(worker_image),
            "WORKER_ENV": render_env_file(env),
            "STOP_TIMEOUT_S": str(STOP_TIMEOUT_S),
            "HEALTH_PORT": health_port,
            "CUDA_VERSION": shlex.quote(image_cuda),
            "MIN_DRIVER": shlex.quote(min_driver(image_cuda)),
            "OPS_AGENT_CONFIG": ops_agent_config(),
        },
    )


def render_shutdown_script() -> str:
    return render_script(
        boot_script("shutdown.sh"),
        {"STOP_TIMEOUT_S": str(STOP_TIMEOUT_S), "SHUTDOWN_BUDGET_S": str(SHUTDOWN_BUDGET_S)},
    )
