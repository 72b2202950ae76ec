"""The worker VM image, baked with Packer: NVIDIA driver, container runtime, Ops Agent, pre-pulled worker image.

The image is named after a hash of everything that goes into it (the template, the scripts, the
worker image's digest, the driver branch, the source image), so `pulumi up` bakes only when one of
them changes; otherwise the Command's trigger is unchanged and nothing runs. A worker image given by
tag is resolved to its digest at every `pulumi preview/up` (`gcloud artifacts docker images
describe`), so a tag pushed again bakes a new image and rolls the pool; a reference pinned to a digest
(`...:tag@sha256:...`) is used as is and needs no lookup.

The build VM runs as a service account of its own choosing (created per model unless given), with
registry read granted where the registry lives; it has no external IP and Packer reaches it through
an IAP TCP tunnel with OS Login, so it works where external IPs and metadata SSH keys are forbidden.

A user who manages images elsewhere names one (`existing_image`) or a family (`existing_family`) and
nothing is built.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_command as command
import pulumi_gcp as gcp

from asyncinfer.components.gpu_driver import DEFAULT_DRIVER_BRANCH, DEFAULT_IMAGE_CUDA, check_driver_branch
from asyncinfer.components.package_files import BAKE_DIR_NAME, package_dir
from asyncinfer.components.registry import digest_of, pinned_reference, registry_location, registry_reader_grant

#: The Packer template and its scripts, shipped inside this package.
BAKE_DIR = package_dir(BAKE_DIR_NAME)
IMAGE_PREFIX = "asyncinfer-gpu"
COMPUTE_API = "https://www.googleapis.com/compute/v1"
#: Source range of IAP TCP forwarding (Google's "Using IAP for TCP forwarding" page): the build VM's
#: SSH is reachable from it only.
IAP_TCP_RANGE = "35.235.240.0/20"
BAKE_NETWORK_TAG = "asyncinfer-bake"


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


def bake_account_id(model: str) -> str:
    """The bake's service account id (6-30 chars), shortened with a hash when the model name is long."""
    candidate = f"{model}-bake"
    if len(candidate) <= 30:
        return candidate
    return f"{model[:21].rstrip('-')}-b-{hashlib.sha256(model.encode()).hexdigest()[:6]}"


@dataclass(frozen=True, kw_only=True)
class BakedImageArgs:
    project: pulumi.Input[str]
    #: Where Packer starts its build VM (no GPU needed: DKMS builds the driver without one).
    zone: str
    #: The worker's container image, pre-pulled into the VM image: a tag, or pinned to a digest.
    worker_image: str
    #: Names the bake's service account and firewall rule.
    model: str = "asyncinfer"
    driver_branch: str = DEFAULT_DRIVER_BRANCH
    #: CUDA major.minor of the worker image; the driver branch must be new enough for it.
    image_cuda_version: str = DEFAULT_IMAGE_CUDA
    source_image_family: str = "debian-12"
    source_image_project: str = "debian-cloud"
    disk_size_gb: int = 100
    image_family: str = IMAGE_PREFIX
    network: str = "default"
    subnetwork: str | None = None
    #: The build VM's service account (email). None: one is created for this model's bakes.
    build_service_account: str | None = None
    #: Grant roles/artifactregistry.reader on the image's repository (in whatever project it lives).
    #: Off when the registry's owners grant it themselves (the deployer then needs no IAM rights there).
    grant_registry_read: bool = True
    #: No external IP on the build VM; Packer connects through an IAP tunnel with OS Login.
    use_iap: bool = True
    #: Resolve a tag to its digest at every preview/up (needs gcloud). Off: the hash holds the
    #: reference string only, and a tag pushed again is not re-baked (the VMs still pull it at boot).
    resolve_digest: bool = True
    #: Use this image (name or self link) instead of baking one.
    existing_image: str | None = None
    #: Use the newest image of this family (name or URL) instead of baking one.
    existing_family: str | None = None
    images_dir: Path = field(default=BAKE_DIR)

    def __post_init__(self) -> None:
        if self.existing_image and self.existing_family:
            raise ValueError("give existing_image or existing_family, not both: the pool boots one image.")
        if not self.driver_branch.isdigit():
            raise ValueError(f"driver_branch {self.driver_branch!r} must be an NVIDIA branch number such as '570'.")
        check_driver_branch(self.driver_branch, self.image_cuda_version)
        digest_of(self.worker_image)  # a malformed digest fails here, not in Packer
        if not self.builds:
            return
        if not (self.images_dir / "gpu-worker.pkr.hcl").is_file():
            raise ValueError(f"no Packer template at {self.images_dir / 'gpu-worker.pkr.hcl'}.")

    @property
    def builds(self) -> bool:
        return not (self.existing_image or self.existing_family)

    def content_hash_for(self, worker_image_digest: str | None) -> str:
        return content_hash(
            self.images_dir,
            self.worker_image,
            worker_image_digest or "",
            self.driver_branch,
            self.source_image_family,
            self.source_image_project,
            str(self.disk_size_gb),
        )

    @property
    def content_hash(self) -> str:
        """The hash with the digest the reference is pinned to (none for a bare tag)."""
        return self.content_hash_for(digest_of(self.worker_image))

    @property
    def image_name(self) -> str:
        return image_name_for(self.content_hash)


def image_name_for(content: str) -> str:
    return f"{IMAGE_PREFIX}-{content[:12]}"


def resolve_digest(image: str, opts: pulumi.InvokeOutputOptions | None = None) -> pulumi.Output[str]:
    """The digest a tag names right now, looked up at every preview/up (an invoke, not a resource)."""
    lookup = command.local.run_output(
        command=f"gcloud artifacts docker images describe {shlex.quote(image)} --format='value(image_summary.digest)'",
        interpreter=["/bin/bash", "-c"],
        opts=opts,
    )

    def checked(stdout: str | None) -> str:
        digest = (stdout or "").strip()
        if digest_of(f"x@{digest}") is None:
            raise ValueError(f"no digest for {image}; is the tag pushed and gcloud logged in?")
        return digest

    return lookup.stdout.apply(checked)


def build_script(images_dir: Path) -> str:
    """The Command's create step: bake unless an image of that name already exists (a re-run after a
    failed `pulumi up`, or a second stack with the same inputs, reuses it). gcloud must be logged in:
    checked first, so a missing login is reported as such and not mistaken for a missing image."""
    directory = shlex.quote(str(images_dir))
    return (
        "set -euo pipefail\n"
        "if ! gcloud auth print-access-token >/dev/null 2>&1; then\n"
        '  echo "gcloud is not logged in on this machine, so the bake cannot check whether image '
        "$PKR_VAR_image_name exists: run \\`gcloud auth login\\` (or activate a service account) and "
        '\\`gcloud auth application-default login\\` for Packer, then pulumi up again" >&2\n'
        "  exit 2\n"
        "fi\n"
        'if found="$(gcloud compute images describe "$PKR_VAR_image_name" --project "$PKR_VAR_project_id" '
        '--format="value(name)" 2>&1)"; then\n'
        '  echo "image $PKR_VAR_image_name exists; not baking"\n'
        'elif grep -q "was not found" <<<"$found"; then\n'
        f"  packer init {directory}\n"
        f"  packer build -color=false {directory}\n"
        "else\n"
        '  echo "cannot tell whether image $PKR_VAR_image_name exists: $found" >&2\n'
        "  exit 2\n"
        "fi\n"
    )


def delete_script() -> str:
    """The Command's delete step, run when a new bake replaces this one or the stack is destroyed:
    the image goes, unless an instance template still boots it (another stack baked the same
    content and shares it). By then this stack's own old template is gone: Pulumi deletes
    dependents first."""
    return (
        "set -uo pipefail\n"
        'users="$(gcloud compute instance-templates list --project "$PKR_VAR_project_id" '
        '--format="value(name)" --filter="properties.disks.initializeParams.sourceImage~/$PKR_VAR_image_name\\$" '
        '2>&1)" || { echo "cannot list instance templates, keeping image $PKR_VAR_image_name: $users" >&2; exit 0; }\n'
        'if [ -n "$users" ]; then\n'
        '  echo "image $PKR_VAR_image_name is still used by: $users; keeping it" >&2\n'
        "  exit 0\n"
        "fi\n"
        'gcloud compute images delete "$PKR_VAR_image_name" --project "$PKR_VAR_project_id" --quiet 2>&1 '
        '| grep -v "was not found" >&2 || true\n'
    )


class BakedImage(pulumi.ComponentResource):
    """`self_link`: the boot image for the worker pool's instance template.
    `worker_image_digest`: the digest the image was baked with, which the pool's VMs run."""

    self_link: pulumi.Output[str]
    worker_image_digest: pulumi.Output[str] | None
    image_name: pulumi.Output[str] | None
    content_hash: pulumi.Output[str] | None

    def __init__(self, name: str, args: BakedImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("asyncinfer:index:BakedImage", name, None, opts)
        project = pulumi.Output.from_input(args.project)

        pinned = digest_of(args.worker_image)
        if pinned is not None:
            self.worker_image_digest = pulumi.Output.from_input(pinned)
        elif args.resolve_digest and registry_location(args.worker_image) is not None:
            self.worker_image_digest = resolve_digest(args.worker_image, pulumi.InvokeOutputOptions(parent=self))
        else:
            self.worker_image_digest = None

        if args.existing_image:
            image = args.existing_image
            self.image_name = pulumi.Output.from_input(image.rsplit("/", 1)[-1])
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
            digest: pulumi.Output[str | None] = (
                self.worker_image_digest if self.worker_image_digest is not None else pulumi.Output.from_input(None)
            )
            self.content_hash = digest.apply(args.content_hash_for)
            self.image_name = self.content_hash.apply(image_name_for)
            account = self._build_account(name, args)
            firewall = self._iap_firewall(name, args) if args.use_iap else None
            environment: dict[str, pulumi.Input[str]] = {
                "PKR_VAR_project_id": args.project,
                "PKR_VAR_zone": args.zone,
                "PKR_VAR_image_name": self.image_name,
                "PKR_VAR_image_family": args.image_family,
                "PKR_VAR_worker_image": digest.apply(lambda d: pinned_reference(args.worker_image, d)),
                "PKR_VAR_driver_branch": args.driver_branch,
                "PKR_VAR_source_image_family": args.source_image_family,
                "PKR_VAR_source_image_project": args.source_image_project,
                "PKR_VAR_disk_size_gb": str(args.disk_size_gb),
                "PKR_VAR_network": args.network,
                "PKR_VAR_subnetwork": args.subnetwork or "",
                "PKR_VAR_build_service_account": account,
                "PKR_VAR_use_iap": "true" if args.use_iap else "false",
                "PKR_VAR_network_tag": BAKE_NETWORK_TAG,
            }
            bake = command.local.Command(
                f"{name}-packer-build",
                create=build_script(args.images_dir),
                delete=delete_script(),
                interpreter=["/bin/bash", "-c"],
                environment=environment,
                # Only a new content hash re-runs the bake; the image name carries the same hash.
                triggers=[self.content_hash],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[firewall] if firewall is not None else None),
            )
            # Depends on stdout so that the pool's template waits for the bake to finish.
            self.self_link = pulumi.Output.all(project, self.image_name, bake.stdout).apply(
                lambda v: f"{COMPUTE_API}/projects/{v[0]}/global/images/{v[1]}"
            )

        self.register_outputs(
            {
                "self_link": self.self_link,
                "image_name": self.image_name,
                "content_hash": self.content_hash,
                "worker_image_digest": self.worker_image_digest,
            }
        )

    def _build_account(self, name: str, args: BakedImageArgs) -> pulumi.Input[str]:
        """The build VM's service account, with registry read where the image lives."""
        child = pulumi.ResourceOptions(parent=self)
        email: pulumi.Input[str]
        if args.build_service_account:
            email = args.build_service_account
        else:
            account = gcp.serviceaccount.Account(
                f"{name}-bake-sa",
                account_id=bake_account_id(args.model),
                display_name=f"asyncinfer {args.model} image bake",
                project=args.project,
                opts=child,
            )
            email = account.email
        if args.grant_registry_read:
            member = pulumi.Output.from_input(email).apply(lambda e: f"serviceAccount:{e}")
            registry_reader_grant(f"{name}-bake-registry-reader", args.worker_image, member, opts=child)
        return email

    def _iap_firewall(self, name: str, args: BakedImageArgs) -> gcp.compute.Firewall:
        """SSH from IAP's TCP forwarding range to the build VM only (by its network tag)."""
        return gcp.compute.Firewall(
            f"{name}-bake-iap-ssh",
            name=f"{args.model[:40]}-bake-iap-ssh",
            project=args.project,
            network=args.network,
            direction="INGRESS",
            source_ranges=[IAP_TCP_RANGE],
            target_tags=[BAKE_NETWORK_TAG],
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=["22"])],
            description="asyncinfer: Packer reaches the image bake VM through IAP",
            opts=pulumi.ResourceOptions(parent=self),
        )
