"""The bake as deployed: its own service account, registry read where the registry lives, no external
IP (IAP + OS Login) with the firewall rule it needs, the digest in the hash, and the bake's shell
steps run with bash against stub gcloud/packer."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from asyncinfer.components.baked_image import (
    BAKE_DIR,
    IAP_TCP_RANGE,
    BakedImage,
    BakedImageArgs,
    build_script,
    delete_script,
)
from asyncinfer.components.gpu_driver import DriverMismatchError
from tests.components.conftest import PROJECT, Engine

CENTRAL = "europe-west4-docker.pkg.dev/central-registry/models/symbols"
DIGEST = "sha256:" + "e" * 64


def bake(engine: Engine, **overrides: object):  # type: ignore[no-untyped-def]
    args = BakedImageArgs(project=PROJECT, zone="asia-northeast1-b", worker_image=f"{CENTRAL}:1", model="symbols",
                          **overrides)  # type: ignore[arg-type]
    return engine.run(lambda: BakedImage("img", args).self_link)


def test_the_bake_runs_as_its_own_account_with_registry_read_in_the_registrys_project(engine: Engine) -> None:
    graph = bake(engine)
    account = graph.one("gcp:serviceaccount/account:Account")
    assert account.inputs["accountId"] == "symbols-bake"
    grant = graph.one("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    assert (grant.inputs["project"], grant.inputs["location"], grant.inputs["repository"]) == (
        "central-registry", "europe-west4", "models"
    )
    assert grant.inputs["role"] == "roles/artifactregistry.reader"
    assert grant.inputs["member"] == f"serviceAccount:symbols-bake@{PROJECT}.iam.gserviceaccount.com"
    env = graph.one("command:local:Command").inputs["environment"]
    assert env["PKR_VAR_build_service_account"] == f"symbols-bake@{PROJECT}.iam.gserviceaccount.com"


def test_a_chosen_bake_account_is_used_and_granted(engine: Engine) -> None:
    graph = bake(engine, build_service_account="builder@ops.iam.gserviceaccount.com")
    assert graph.count("gcp:serviceaccount/account:Account") == 0
    env = graph.one("command:local:Command").inputs["environment"]
    assert env["PKR_VAR_build_service_account"] == "builder@ops.iam.gserviceaccount.com"
    grant = graph.one("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    assert grant.inputs["member"] == "serviceAccount:builder@ops.iam.gserviceaccount.com"


def test_registry_grants_can_be_left_to_the_registrys_owners(engine: Engine) -> None:
    graph = bake(engine, grant_registry_read=False)
    assert graph.count("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember") == 0


def test_the_build_vm_has_no_external_ip_and_iap_may_reach_its_ssh(engine: Engine) -> None:
    graph = bake(engine)
    firewall = graph.one("gcp:compute/firewall:Firewall")
    assert firewall.inputs["sourceRanges"] == [IAP_TCP_RANGE]
    assert firewall.inputs["allows"] == [{"protocol": "tcp", "ports": ["22"]}]
    command = graph.one("command:local:Command")
    assert firewall.inputs["targetTags"] == [command.inputs["environment"]["PKR_VAR_network_tag"]]
    assert command.inputs["environment"]["PKR_VAR_use_iap"] == "true"
    assert firewall.urn in command.dependencies
    template = (BAKE_DIR / "gpu-worker.pkr.hcl").read_text()
    for line in ("omit_external_ip = var.use_iap", "use_iap          = var.use_iap", "use_os_login     = true",
                 "tags             = [var.network_tag]"):
        assert line in template
    # Root's Docker credentials (the pre-pull) must be root's, not the packer user's.
    assert template.count("sudo -E env HOME=/root {{ .Vars }}") == 2


def test_a_digest_pinned_image_needs_no_lookup_and_the_digest_changes_the_image(engine: Engine) -> None:
    pinned = BakedImageArgs(project=PROJECT, zone="z", worker_image=f"{CENTRAL}:1@{DIGEST}")
    other = BakedImageArgs(project=PROJECT, zone="z", worker_image=f"{CENTRAL}:1@sha256:{'f' * 64}")
    assert pinned.image_name != other.image_name
    graph = engine.run(lambda: BakedImage("img", pinned).self_link)
    assert [t for t, _ in engine.monitor.recording.calls if t == "command:local:run"] == []
    env = graph.one("command:local:Command").inputs["environment"]
    assert env["PKR_VAR_worker_image"] == f"{CENTRAL}@{DIGEST}"
    assert env["PKR_VAR_image_name"] == pinned.image_name


def test_a_driver_branch_too_old_for_the_images_cuda_is_refused() -> None:
    refused = "asyncinfer:driverBranch 550 cannot run the worker image's CUDA 12.8"
    with pytest.raises(DriverMismatchError, match=refused):
        BakedImageArgs(project=PROJECT, zone="z", worker_image=f"{CENTRAL}:1", driver_branch="550")
    BakedImageArgs(project=PROJECT, zone="z", worker_image=f"{CENTRAL}:1", driver_branch="550",
                   image_cuda_version="12.4")


# --- the Command's create and delete steps, run with bash


def stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/bash\necho \"$0 $*\" >> \"$STUB_LOG\"\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def run_step(tmp_path: Path, script: str, gcloud: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub(bin_dir, "gcloud", gcloud)
    stub(bin_dir, "packer", "exit 0\n")
    log = tmp_path / "calls.log"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STUB_LOG": str(log), "PKR_VAR_image_name": "asyncinfer-gpu-abc",
           "PKR_VAR_project_id": "p"}
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    calls = [line.split(" ", 1)[1] for line in log.read_text().splitlines()] if log.exists() else []
    return done, calls


NOT_LOGGED_IN = 'if [ "$1 $2" = "auth print-access-token" ]; then echo "ERROR: no active account" >&2; exit 1; fi\n'
NOT_FOUND = ('if [ "$1 $2" = "compute images" ]; then echo "ERROR: (gcloud.compute.images.describe) '
             "Could not fetch resource: - The resource 'projects/p/global/images/asyncinfer-gpu-abc' was not found\" "
             ">&2; exit 1; fi\n")


def test_a_rebake_without_a_gcloud_login_says_so_and_builds_nothing(tmp_path: Path) -> None:
    done, calls = run_step(tmp_path, build_script(BAKE_DIR), NOT_LOGGED_IN)
    assert done.returncode == 2
    assert "gcloud is not logged in" in done.stderr and "gcloud auth login" in done.stderr
    assert not any(c.startswith(("compute", "build", "init")) for c in calls)


def test_an_existing_image_is_reused(tmp_path: Path) -> None:
    done, calls = run_step(tmp_path, build_script(BAKE_DIR), "exit 0\n")
    assert done.returncode == 0, done.stderr
    assert "exists; not baking" in done.stdout
    assert not any(c.startswith("build") for c in calls)


def test_a_missing_image_is_baked(tmp_path: Path) -> None:
    done, calls = run_step(tmp_path, build_script(BAKE_DIR), NOT_FOUND)
    assert done.returncode == 0, done.stderr
    packer = [c for c in calls if c.startswith(("init", "build"))]
    assert packer == [f"init {BAKE_DIR}", f"build -color=false {BAKE_DIR}"]


def test_any_other_gcloud_error_stops_the_bake_with_it(tmp_path: Path) -> None:
    gcloud = 'if [ "$1 $2" = "compute images" ]; then echo "ERROR: permission denied" >&2; exit 1; fi\n'
    done, calls = run_step(tmp_path, build_script(BAKE_DIR), gcloud)
    assert done.returncode == 2 and "permission denied" in done.stderr
    assert not any(c.startswith("build") for c in calls)


def test_a_replaced_image_is_deleted_unless_a_template_still_boots_it(tmp_path: Path) -> None:
    done, calls = run_step(tmp_path, delete_script(), "exit 0\n")
    assert done.returncode == 0
    assert "compute images delete asyncinfer-gpu-abc --project p --quiet" in calls

    used = 'if [ "$1" = "compute" ] && [ "$2" = "instance-templates" ]; then echo other-stack-gpu-1; fi\n'
    (tmp_path / "again").mkdir()
    done, calls = run_step(tmp_path / "again", delete_script(), used)
    assert "still used by: other-stack-gpu-1" in done.stderr
    assert not any("images delete" in c for c in calls)


def test_the_template_validates_with_packer_when_present() -> None:
    if not any(Path(p, "packer").exists() for p in os.environ.get("PATH", "").split(os.pathsep)):
        pytest.fail("packer is not installed: `apt-get install packer` (Debian ships 1.6, enough to validate)")
    done = subprocess.run(
        ["packer", "validate", "-var", "project_id=p", "-var", "zone=z", "-var", "image_name=asyncinfer-gpu-x",
         "-var", "worker_image=w", str(BAKE_DIR / "gpu-worker.pkr.hcl")],
        capture_output=True, text=True, cwd=BAKE_DIR, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
