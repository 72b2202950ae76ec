"""The worker VM image, baked with Packer: NVIDIA driver, container runtime, pre-pulled worker image.

The image is named after a hash of everything that goes into it, so `pulumi up` bakes only when the
template, a script, the worker image or the driver changes; otherwise the Command's trigger is
unchanged and nothing runs. A user who manages images elsewhere names one (`existing_image`) or a
family (`existing_family`) and nothing is built.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_command as command

from asyncinfer.components.package_files import BAKE_DIR_NAME, package_dir

#: The Packer template and its scripts, shipped inside this package.
BAKE_DIR = package_dir(BAKE_DIR_NAME)
IMAGE_PREFIX = "asyncinfer-gpu"
COMPUTE_API = "https://www.googleapis.com/compute/v1"


def image_inputs(images_dir: Path) -> list[Path]:
    """The files whose content decides the image: Packer templates and provisioning scripts."""
    return sorted([*images_dir.glob("*.pkr.hcl"), *(images_dir / "scripts").glob("*.sh")])


def content_hash(images_dir: Path, *values: str) -> str:
    digest = hashlib.sha256()
    for path in image_inputs(images_dir):
        # The relative path is hashed too: renaming a script changes the order it runs in.
        digest.update(path.relative_to(images_dir).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    for value in values:
        digest.update(value.encode())
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(frozen=True, kw_only=True)
class BakedImageArgs:
    project: pulumi.Input[str]
    #: Where Packer starts its build VM (no GPU needed: DKMS builds the driver without one).
    zone: str
    #: The worker's container image, pre-pulled into the VM image.
    worker_image: str
    driver_branch: str = "550"
    source_image_family: str = "debian-12"
    source_image_project: str = "debian-cloud"
    disk_size_gb: int = 100
    image_family: str = IMAGE_PREFIX
    network: str = "default"
    subnetwork: str | None = None
    build_service_account: str | None = None
    #: Use this image (name or self link) instead of baking one.
    existing_image: str | None = None
    #: Use the newest image of this family (name or URL) instead of baking one.
    existing_family: str | None = None
    images_dir: Path = field(default=BAKE_DIR)

    def __post_init__(self) -> None:
        if self.existing_image and self.existing_family:
            raise ValueError("give existing_image or existing_family, not both: the pool boots one image.")
        if not self.driver_branch.isdigit():
            raise ValueError(f"driver_branch {self.driver_branch!r} must be an NVIDIA branch number such as '550'.")
        if not self.builds:
            return
        if not (self.images_dir / "gpu-worker.pkr.hcl").is_file():
            raise ValueError(f"no Packer template at {self.images_dir / 'gpu-worker.pkr.hcl'}.")

    @property
    def builds(self) -> bool:
        return not (self.existing_image or self.existing_family)

    @property
    def content_hash(self) -> str:
        return content_hash(
            self.images_dir,
            self.worker_image,
            self.driver_branch,
            self.source_image_family,
            self.source_image_project,
            str(self.disk_size_gb),
        )

    @property
    def image_name(self) -> str:
        return f"{IMAGE_PREFIX}-{self.content_hash[:12]}"


def build_script(images_dir: Path) -> str:
    """The Command's create step: bake unless an image of that name already exists (a re-run after a
    failed `pulumi up`, or a second stack with the same inputs, reuses it)."""
    directory = shlex.quote(str(images_dir))
    return (
        "set -euo pipefail\n"
        'if gcloud compute images describe "$PKR_VAR_image_name" --project "$PKR_VAR_project_id" '
        ">/dev/null 2>&1; then\n"
        '  echo "image $PKR_VAR_image_name exists; not baking"\n'
        "else\n"
        f"  packer init {directory}\n"
        f"  packer build -color=false {directory}\n"
        "fi\n"
    )


class BakedImage(pulumi.ComponentResource):
    """`self_link`: the boot image for the worker pool's instance template."""

    self_link: pulumi.Output[str]
    image_name: str | None
    content_hash: str | None

    def __init__(self, name: str, args: BakedImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("asyncinfer:index:BakedImage", name, None, opts)
        project = pulumi.Output.from_input(args.project)

        if args.existing_image:
            image = args.existing_image
            self.image_name = image.rsplit("/", 1)[-1]
            self.content_hash = None
            self.self_link = project.apply(
                lambda p: image if "/" in image else f"{COMPUTE_API}/projects/{p}/global/images/{image}"
            )
        elif args.existing_family:
            family = args.existing_family
            self.image_name = None
            self.content_hash = None
            # GCE resolves a family URL to its newest image when a VM boots.
            self.self_link = project.apply(
                lambda p: family if "/" in family else f"{COMPUTE_API}/projects/{p}/global/images/family/{family}"
            )
        else:
            self.content_hash = args.content_hash
            self.image_name = args.image_name
            environment: dict[str, pulumi.Input[str]] = {
                "PKR_VAR_project_id": args.project,
                "PKR_VAR_zone": args.zone,
                "PKR_VAR_image_name": args.image_name,
                "PKR_VAR_image_family": args.image_family,
                "PKR_VAR_worker_image": args.worker_image,
                "PKR_VAR_driver_branch": args.driver_branch,
                "PKR_VAR_source_image_family": args.source_image_family,
                "PKR_VAR_source_image_project": args.source_image_project,
                "PKR_VAR_disk_size_gb": str(args.disk_size_gb),
                "PKR_VAR_network": args.network,
                "PKR_VAR_subnetwork": args.subnetwork or "",
                "PKR_VAR_build_service_account": args.build_service_account or "",
            }
            bake = command.local.Command(
                f"{name}-packer-build",
                create=build_script(args.images_dir),
                interpreter=["/bin/bash", "-c"],
                environment=environment,
                # Only a new content hash re-runs the bake; the image name carries the same hash.
                triggers=[args.content_hash],
                opts=pulumi.ResourceOptions(parent=self),
            )
            image_name = args.image_name
            # Depends on stdout so that the pool's template waits for the bake to finish.
            self.self_link = pulumi.Output.all(project, bake.stdout).apply(
                lambda v: f"{COMPUTE_API}/projects/{v[0]}/global/images/{image_name}"
            )

        self.register_outputs(
            {"self_link": self.self_link, "image_name": self.image_name, "content_hash": self.content_hash}
        )
