"""The claim-check bucket: inputs too large for a message (gs://BUCKET/inputs/...) and outputs too large
for a result (gs://BUCKET/results/...).

Created per model unless the stack names an existing bucket. The pool's service account gets exactly
roles/storage.objectViewer and roles/storage.objectCreator on this bucket (GpuWorkerPool), nothing
project-wide: it reads (gets and lists) inputs and creates outputs, and can neither overwrite nor
delete.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

RESULTS_FOLDER = "results"
INPUTS_FOLDER = "inputs"


def bucket_name(project: str, model: str) -> str:
    """A globally unique bucket name (3-63 chars) derived from the project and the model."""
    digest = hashlib.sha256(f"{project}/{model}".encode()).hexdigest()[:8]
    return f"{model[:46].rstrip('-')}-claims-{digest}"


@dataclass(frozen=True, kw_only=True)
class ClaimCheckBucketArgs:
    project: pulumi.Input[str]
    #: Where the bucket lives: the pool's region, so reads and writes stay in-region.
    location: str
    model: str
    #: Use this bucket (name) instead of creating one; the pool still gets its two roles on it.
    existing_bucket: str | None = None
    #: Objects are deleted this many days after creation (inputs and outputs alike).
    retention_days: int = 7

    def __post_init__(self) -> None:
        if self.retention_days < 1:
            raise ValueError("claim retention must be at least 1 day, or results vanish before clients read them.")
        if self.existing_bucket is not None and (not self.existing_bucket or "/" in self.existing_bucket):
            raise ValueError(
                f"asyncinfer:storageBucket {self.existing_bucket!r} must be a bucket name (no gs://, no folder)."
            )


class ClaimCheckBucket(pulumi.ComponentResource):
    """`name`: the bucket's name; `results_prefix`: gs://<bucket>/results, the workers' RESULTS_URI_PREFIX."""

    name: pulumi.Output[str]
    results_prefix: pulumi.Output[str]

    def __init__(self, name: str, args: ClaimCheckBucketArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("asyncinfer:index:ClaimCheckBucket", name, None, opts)
        if args.existing_bucket:
            self.name = pulumi.Output.from_input(args.existing_bucket)
        else:
            bucket = gcp.storage.Bucket(
                f"{name}-bucket",
                name=pulumi.Output.from_input(args.project).apply(lambda p: bucket_name(p, args.model)),
                project=args.project,
                location=args.location,
                uniform_bucket_level_access=True,
                public_access_prevention="enforced",
                # Refuse to destroy a bucket that still holds objects: results may not have been read.
                force_destroy=False,
                lifecycle_rules=[
                    gcp.storage.BucketLifecycleRuleArgs(
                        action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                        condition=gcp.storage.BucketLifecycleRuleConditionArgs(age=args.retention_days),
                    )
                ],
                labels={"asyncinfer-model": args.model},
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.name = bucket.name
        self.results_prefix = pulumi.Output.concat("gs://", self.name, f"/{RESULTS_FOLDER}")
        self.register_outputs({"name": self.name, "results_prefix": self.results_prefix})
