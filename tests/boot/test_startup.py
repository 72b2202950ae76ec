"""The worker VM's startup script, run for real with bash: rendered by the components exactly as Pulumi
would ship it, with stub docker / nvidia-smi / gcloud / systemctl on PATH and a fake metadata server."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from asyncinfer.components.worker_pool import render_startup_script
from asyncinfer.core.worker_settings import worker_environment
from tests.boot.metadata_server import FakeMetadataServer
from tests.boot.stubs import Stubs, install_stubs, stub_environment
from tests.support.health import probe_health

REPOSITORY = "asia-northeast1-docker.pkg.dev/central-registry/models/symbols"
TAG = f"{REPOSITORY}:1.0"
BAKED = "sha256:" + "b" * 64
PUSHED = "sha256:" + "c" * 64
PUSHED_AGAIN = "sha256:" + "d" * 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Vm:
    root: Path
    stubs: Stubs
    metadata: FakeMetadataServer
    health_port: int

    def boot(self, image: str = TAG, **env: str) -> subprocess.CompletedProcess[str]:
        script = self.root / "startup.sh"
        script.write_text(
            render_startup_script(
                image,
                worker_environment(
                    project="p", subscription="symbols-requests", results_topic="symbols-results",
                    health_port=self.health_port, results_uri_prefix="gs://symbols-claims/results",
                ),
            )
        )
        environment = stub_environment(
            self.stubs,
            METADATA_HOST=self.metadata.host,
            ASYNCINFER_STATE_DIR=str(self.root / "run"),
            ASYNCINFER_ROOT_HOME=str(self.root / "roothome"),
            ASYNCINFER_OPS_AGENT_CONFIG=str(self.root / "etc-ops-agent" / "config.yaml"),
            ASYNCINFER_GPU_WAIT_TRIES="2",
            ASYNCINFER_GPU_WAIT_SLEEP_S="0",
            **env,
        )
        return subprocess.run(
            ["bash", str(script)], env=environment, capture_output=True, text=True, timeout=60, cwd=self.root
        )

    def docker_run(self) -> list[str]:
        runs = [argv for argv in self.stubs.argvs("docker") if argv[0] == "run"]
        assert len(runs) == 1, f"expected one docker run, got {runs}"
        return runs[0]

    def stop_responder(self) -> None:
        pid_file = self.root / "run" / "health-responder.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except ProcessLookupError:
                pass


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[Vm]:
    (tmp_path / "etc-ops-agent").mkdir()
    stubs = install_stubs(tmp_path, registry={TAG: PUSHED}, local_tags={TAG: BAKED})
    with FakeMetadataServer() as metadata:
        machine = Vm(tmp_path, stubs, metadata, free_port())
        yield machine
        machine.stop_responder()


def flag_value(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_the_container_runs_by_digest_with_gpus_env_restart_policy_and_json_logs(vm: Vm) -> None:
    done = vm.boot()
    assert done.returncode == 0, done.stderr
    run = vm.docker_run()
    # The tag was pulled (its manifest changed since the bake) and the container runs from the digest.
    assert ["pull", TAG] in vm.stubs.argvs("docker")
    assert run[-1] == f"{REPOSITORY}@{PUSHED}"
    assert flag_value(run, "--gpus") == ["all"]
    assert flag_value(run, "--restart") == ["on-failure:5"]
    assert flag_value(run, "--network") == ["host"]
    assert flag_value(run, "--stop-timeout") == ["25"]
    assert flag_value(run, "--log-driver") == ["json-file"]
    assert "max-size=50m" in flag_value(run, "--log-opt")
    env_file = Path(flag_value(run, "--env-file")[0])
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert env["ASYNCINFER_SUBSCRIPTION"] == "symbols-requests"
    assert env["ASYNCINFER_RESULTS_TOPIC"] == "symbols-results"
    assert env["ASYNCINFER_RESULTS_URI_PREFIX"] == "gs://symbols-claims/results"
    assert env["ASYNCINFER_HEALTH_PORT"] == str(vm.health_port)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert vm.metadata.state.last("asyncinfer/boot-status") == f"running {REPOSITORY}@{PUSHED}"
    assert vm.metadata.state.missing_flavor == 0


def test_registry_credentials_are_configured_for_root_before_the_pull(vm: Vm) -> None:
    assert vm.boot().returncode == 0
    root_home = str(vm.root / "roothome")
    configure = vm.stubs.calls("gcloud")
    assert [c["argv"] for c in configure] == [
        ["auth", "configure-docker", "asia-northeast1-docker.pkg.dev", "--quiet"]
    ]
    # HOME is root's, whatever the startup environment had (the packer user's HOME was the bake's bug).
    assert configure[0]["home"] == root_home
    assert configure[0]["docker_config"] == f"{root_home}/.docker"
    tools = [c["tool"] + ":" + c["argv"][0] for c in vm.stubs.calls() if c["tool"] in ("gcloud", "docker")]
    assert tools.index("gcloud:auth") < tools.index("docker:pull")
    assert all(c["home"] == root_home for c in vm.stubs.calls("docker"))


def test_docker_credential_gcr_is_preferred_when_the_image_has_it(vm: Vm) -> None:
    helper = vm.stubs.bin_dir / "docker-credential-gcr"
    helper.write_text((vm.stubs.bin_dir / "gcloud").read_text())
    helper.chmod(0o755)
    assert vm.boot().returncode == 0
    assert vm.stubs.argvs("docker-credential-gcr") == [
        ["configure-docker", "--registries=asia-northeast1-docker.pkg.dev"]
    ]
    assert vm.stubs.calls("gcloud") == []


def test_a_tag_pushed_again_is_pulled_at_the_next_boot(vm: Vm) -> None:
    assert vm.boot().returncode == 0
    assert vm.docker_run()[-1] == f"{REPOSITORY}@{PUSHED}"
    vm.stubs.calls_path.unlink()
    vm.stubs.update(registry={TAG: PUSHED_AGAIN})
    assert vm.boot().returncode == 0
    assert vm.docker_run()[-1] == f"{REPOSITORY}@{PUSHED_AGAIN}"


def test_a_pinned_digest_runs_as_is_and_is_pulled_only_when_missing(vm: Vm) -> None:
    pinned = f"{REPOSITORY}@{BAKED}"
    assert vm.boot(image=f"{TAG}@{BAKED}").returncode == 0
    assert vm.docker_run()[-1] == pinned
    assert [a for a in vm.stubs.argvs("docker") if a[0] == "pull"] == []

    vm.stubs.calls_path.unlink()
    new = f"{REPOSITORY}@{PUSHED_AGAIN}"
    assert vm.boot(image=new).returncode == 0
    assert ["pull", new] in vm.stubs.argvs("docker")
    assert vm.docker_run()[-1] == new


def test_an_unreachable_registry_falls_back_to_the_baked_copy(vm: Vm) -> None:
    vm.stubs.update(pull_fails=True)
    done = vm.boot()
    assert done.returncode == 0, done.stderr
    assert vm.docker_run()[-1] == f"{REPOSITORY}@{BAKED}"
    assert "running the copy baked into the image" in done.stderr


def test_the_ops_agent_gets_the_worker_pipeline_and_is_restarted(vm: Vm) -> None:
    import yaml

    assert vm.boot().returncode == 0
    config = yaml.safe_load((vm.root / "etc-ops-agent" / "config.yaml").read_text())
    pipeline = config["logging"]["service"]["pipelines"]["asyncinfer_worker"]
    assert pipeline["processors"] == ["docker_wrapper", "worker_json", "worker_severity"]
    receiver = config["logging"]["receivers"][pipeline["receivers"][0]]
    assert receiver["include_paths"] == ["/var/lib/docker/containers/*/*-json.log"]
    processors = config["logging"]["processors"]
    assert processors["worker_json"] == {"type": "parse_json", "field": "log"}
    assert processors["worker_severity"]["fields"]["severity"] == {"move_from": "jsonPayload.severity"}
    assert ["restart", "google-cloud-ops-agent"] in vm.stubs.argvs("systemctl")


def assert_unhealthy(vm: Vm, done: subprocess.CompletedProcess[str], reason: str) -> None:
    """Reported, not crash-looped: no container, an ERROR line, the guest attribute, 503 on the port."""
    assert done.returncode == 1
    assert [a for a in vm.stubs.argvs("docker") if a and a[0] == "run"] == []
    error_lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert error_lines and error_lines[-1]["severity"] == "ERROR" and reason in error_lines[-1]["reason"]
    status = vm.metadata.state.last("asyncinfer/boot-status")
    assert status is not None and status.startswith("unhealthy: ") and reason in status
    code, body = probe_health(vm.health_port, timeout_s=10)
    assert code == 503
    assert body["healthy"] is False and reason in str(body["problems"])


def test_a_driver_too_old_for_the_images_cuda_reports_unhealthy(vm: Vm) -> None:
    done = vm.boot(STUB_DRIVER_VERSION="550.90.07")
    assert_unhealthy(
        vm, done, "NVIDIA driver 550.90.07 is older than 570.26, the minimum for the worker image's CUDA 12.8"
    )
    assert "asyncinfer:driverBranch 570" in str(vm.metadata.state.last("asyncinfer/boot-status"))


def test_a_driver_that_is_new_enough_by_version_order_passes(vm: Vm) -> None:
    # 570.124.06 > 570.26 although "570.124.06" < "570.26" as strings.
    assert vm.boot(STUB_DRIVER_VERSION="570.124.06").returncode == 0
    assert vm.boot(STUB_DRIVER_VERSION="580.65.06").returncode == 0


def test_a_gpu_that_never_comes_up_reports_unhealthy_after_retries(vm: Vm) -> None:
    done = vm.boot(STUB_NVIDIA_FAILS="1")
    assert_unhealthy(vm, done, "nvidia-smi found no GPU after 2 tries")
    assert len(vm.stubs.argvs("nvidia-smi")) == 2


def test_an_image_without_docker_or_driver_is_reported_not_crash_looped(vm: Vm) -> None:
    vm.stubs.remove("docker")
    assert_unhealthy(vm, vm.boot(), "docker is not installed")
    vm.stop_responder()


def test_an_image_without_the_nvidia_driver_is_reported(vm: Vm) -> None:
    vm.stubs.remove("nvidia-smi")
    assert_unhealthy(vm, vm.boot(), "the boot image has no NVIDIA driver")


def test_an_image_that_cannot_be_pulled_or_found_is_reported(vm: Vm) -> None:
    vm.stubs.update(pull_fails=True, local_tags={}, local_digests=[])
    assert_unhealthy(vm, vm.boot(), "failed and the image is not in the boot image")
