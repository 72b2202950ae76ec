"""Where a worker container image lives, and read access to it for the VMs that pull it.

An Artifact Registry reference names its own project: `REGION-docker.pkg.dev/PROJECT/REPO/NAME:TAG`.
A central registry in another project is common, so the reader role is granted on that repository
(the narrowest scope that works), not on the stack's project.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

_ARTIFACT_REGISTRY = re.compile(
    r"^(?P<location>[a-z0-9-]+)-docker\.pkg\.dev/(?P<project>[a-z0-9-:.]+)/(?P<repository>[a-z0-9-_.]+)/"
)
_GCR = re.compile(r"^(?:[a-z]+\.)?gcr\.io/(?P<project>[a-z0-9-:.]+)/")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class RegistryLocation:
    project: str
    #: None for gcr.io, whose repositories are project-wide (gcr.io-backed Artifact Registry).
    location: str | None = None
    repository: str | None = None


def registry_location(image: str) -> RegistryLocation | None:
    """The registry project (and repository) an image reference names; None for registries outside
    Google Cloud (public images need no grant)."""
    match = _ARTIFACT_REGISTRY.match(image)
    if match:
        return RegistryLocation(match["project"], match["location"], match["repository"])
    match = _GCR.match(image)
    if match:
        return RegistryLocation(match["project"])
    return None


def repository_of(image: str) -> str:
    """The reference without tag or digest: `host/path/name`."""
    without_digest = image.split("@", 1)[0]
    head, _, last = without_digest.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}/{name}" if head else name


def digest_of(image: str) -> str | None:
    """The digest a reference is pinned to (`...@sha256:<64 hex>`), else None."""
    if "@" not in image:
        return None
    digest = image.split("@", 1)[1]
    if not _DIGEST.match(digest):
        raise ValueError(f"{image!r} has a malformed digest; it must end in @sha256:<64 hex digits>.")
    return digest


def pinned_reference(image: str, digest: str | None) -> str:
    """`repository@digest` when a digest is known, else the reference as given."""
    if not digest:
        return image
    if not _DIGEST.match(digest):
        raise ValueError(f"digest {digest!r} of {image} is not sha256:<64 hex digits>.")
    return f"{repository_of(image)}@{digest}"


def registry_reader_grant(
    name: str,
    image: str,
    member: pulumi.Input[str],
    opts: pulumi.ResourceOptions | None = None,
) -> pulumi.CustomResource | None:
    """roles/artifactregistry.reader for `member` on the repository `image` lives in (or on the gcr.io
    project). None for images outside Google Cloud."""
    where = registry_location(image)
    if where is None:
        return None
    if where.repository is not None and where.location is not None:
        return gcp.artifactregistry.RepositoryIamMember(
            name,
            project=where.project,
            location=where.location,
            repository=where.repository,
            role="roles/artifactregistry.reader",
            member=member,
            opts=opts,
        )
    return gcp.projects.IAMMember(
        name, project=where.project, role="roles/artifactregistry.reader", member=member, opts=opts
    )
