"""The claim-check bucket as deployed: created per model (or taken), in the pool's region, private,
objects expiring; the workers get object read + object create on that bucket only, and their
RESULTS_URI_PREFIX points into it."""

from __future__ import annotations

from asyncinfer.components.model_stack import program
from asyncinfer.components.storage import ClaimCheckBucket, ClaimCheckBucketArgs, bucket_name
from tests.components.conftest import PROJECT, SCHEDULE_START, Engine
from tests.components.test_stack import symbols_config


def test_the_bucket_is_private_regional_and_expires_objects(engine: Engine) -> None:
    args = ClaimCheckBucketArgs(project=PROJECT, location="asia-northeast1", model="symbols", retention_days=3)
    graph = engine.run(lambda: ClaimCheckBucket("claims", args).results_prefix)
    bucket = graph.one("gcp:storage/bucket:Bucket").inputs
    assert bucket["name"] == bucket_name(PROJECT, "symbols")
    assert bucket["location"] == "asia-northeast1"
    assert bucket["uniformBucketLevelAccess"] is True
    assert bucket["publicAccessPrevention"] == "enforced"
    assert bucket["forceDestroy"] is False
    assert bucket["lifecycleRules"] == [{"action": {"type": "Delete"}, "condition": {"age": 3}}]


def test_bucket_names_fit_gcs_rules_for_the_longest_model_name() -> None:
    name = bucket_name("a-project-with-a-long-id", "m" * 42)
    assert 3 <= len(name) <= 63 and name == name.lower() and name[0].isalnum() and name[-1].isalnum()


def test_an_existing_bucket_creates_nothing(engine: Engine) -> None:
    args = ClaimCheckBucketArgs(project=PROJECT, location="asia-northeast1", model="m", existing_bucket="team-claims")
    prefixes: list[str] = []
    graph = engine.run(lambda: ClaimCheckBucket("claims", args).results_prefix.apply(prefixes.append))
    assert graph.count("gcp:storage/bucket:Bucket") == 0
    assert prefixes == ["gs://team-claims/results"]


def test_the_stack_grants_exactly_object_read_and_create_on_its_bucket(engine: Engine) -> None:
    graph = engine.run(lambda: program(SCHEDULE_START), config=symbols_config())
    bucket = graph.one("gcp:storage/bucket:Bucket")
    account = graph.one("asyncinfer:index:GpuWorkerPool")
    email = next(
        r.outputs["email"] for r in graph.of_type("gcp:serviceaccount/account:Account") if r.parent == account.urn
    )
    grants = graph.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert sorted(g.inputs["role"] for g in grants) == ["roles/storage.objectCreator", "roles/storage.objectViewer"]
    assert {g.inputs["bucket"] for g in grants} == {bucket.inputs["name"]}
    assert {g.inputs["member"] for g in grants} == {f"serviceAccount:{email}"}
    # Nothing project-wide on storage.
    project_roles = {r.inputs["role"] for r in graph.of_type("gcp:projects/iAMMember:IAMMember")}
    assert not any(role.startswith("roles/storage") for role in project_roles)
    metadata = graph.one("gcp:compute/instanceTemplate:InstanceTemplate").inputs["metadata"]
    script = metadata["startup-script"]
    assert f"ASYNCINFER_RESULTS_URI_PREFIX=gs://{bucket.inputs['name']}/results" in script
    # The pool runs the digest the bake pinned, and the boot reports problems in a guest attribute.
    assert "WORKER_IMAGE=asia-northeast1-docker.pkg.dev/" in script and "@sha256:" in script.split("WORKER_IMAGE=")[1]
    assert metadata["enable-guest-attributes"] == "TRUE"
