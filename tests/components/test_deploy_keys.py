"""The deploy keys of the boot, the bake and the claim-check storage: refused before any resource when
they cannot work, and wired into the resources when they can."""

from __future__ import annotations

import pytest

from asyncinfer.components.model_stack import program
from asyncinfer.components.stack_config import StackConfigError, parse_stack_config
from tests.components.conftest import SCHEDULE_START, Engine
from tests.components.test_stack import config


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"driverBranch": "550"},
            "asyncinfer:driverBranch 550 cannot run the worker image's CUDA 12.8 (needs driver >= 570.26",
        ),
        ({"imageCudaVersion": "12.7"}, "CUDA '12.7' is not in the driver table"),
        ({"imageBaked": "false", "existingImage": "plain-debian"}, "asyncinfer:imageBaked: false is not supported"),
        ({"claimRetentionDays": "0"}, "asyncinfer:claimRetentionDays"),
    ],
)
def test_boot_and_bake_keys_that_cannot_work_are_refused_before_any_resource(
    engine: Engine, extra: dict[str, str], expected: str
) -> None:
    with pytest.raises(StackConfigError) as refused:
        parse_stack_config(config(**extra), stack="symbols")
    assert expected in str(refused.value)
    with pytest.raises(StackConfigError):
        engine.run(lambda: program(SCHEDULE_START), config=config(**extra))
    assert [r for r in engine.monitor.graph() if r.custom] == []


def test_an_older_cuda_image_may_use_an_older_driver_branch() -> None:
    parsed = parse_stack_config(config(driverBranch="550", imageCudaVersion="12.4"), stack="symbols")
    assert (parsed.driver_branch, parsed.image_cuda_version) == ("550", "12.4")


def test_an_existing_bucket_a_chosen_bake_account_and_no_registry_grants(engine: Engine) -> None:
    graph = engine.run(
        lambda: program(SCHEDULE_START),
        config=config(
            storageBucket="team-claims",
            bakeServiceAccount="builder@ops.iam.gserviceaccount.com",
            grantRegistryRead="false",
        ),
    )
    assert graph.count("gcp:storage/bucket:Bucket") == 0
    assert {g.inputs["bucket"] for g in graph.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")} == {
        "team-claims"
    }
    env = graph.one("command:local:Command").inputs["environment"]
    assert env["PKR_VAR_build_service_account"] == "builder@ops.iam.gserviceaccount.com"
    assert graph.count("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember") == 0
    script = graph.one("gcp:compute/instanceTemplate:InstanceTemplate").inputs["metadata"]["startup-script"]
    assert "ASYNCINFER_RESULTS_URI_PREFIX=gs://team-claims/results" in script


def test_the_boot_checks_the_driver_the_config_names(engine: Engine) -> None:
    graph = engine.run(
        lambda: program(SCHEDULE_START), config=config(driverBranch="550", imageCudaVersion="12.4")
    )
    script = graph.one("gcp:compute/instanceTemplate:InstanceTemplate").inputs["metadata"]["startup-script"]
    assert "IMAGE_CUDA=12.4" in script and "MIN_DRIVER=550.54.14" in script
