from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from asyncinfer.components.baked_image import BAKE_DIR, BakedImage, BakedImageArgs, content_hash
from asyncinfer.components.package_files import package_dir
from asyncinfer.components.schedule_scaler import ScheduleScaler, ScheduleScalerArgs
from asyncinfer.core.schedules import MAX_SCHEDULES, BusinessCalendar, parse_cron
from tests.components.conftest import PROJECT, SCHEDULE_START, Engine

COMMAND = "command:local:Command"
WORKER_IMAGE = "asia-northeast1-docker.pkg.dev/test-project/asyncinfer/symbols:1"


def test_schedule_scaler_has_no_cloud_children(engine: Engine) -> None:
    scalers: list[ScheduleScaler] = []
    graph = engine.run(
        lambda: scalers.append(
            ScheduleScaler(
                "s", ScheduleScalerArgs(calendar=BusinessCalendar(min_replicas=0), start=SCHEDULE_START)
            )
        )
    )
    assert [r.type for r in graph.resources] == ["asyncinfer:index:ScheduleScaler"]
    scaler = scalers[0]
    assert scaler.base_min == 0
    assert 0 < len(scaler.scaling_schedules) <= MAX_SCHEDULES
    for s in scaler.scaling_schedules:
        parse_cron(str(s.schedule))
        assert s.min_required_replicas == 1


def test_no_schedules_when_business_hours_ask_for_nothing_more(engine: Engine) -> None:
    scalers: list[ScheduleScaler] = []
    calendar = BusinessCalendar(business_min_replicas=1, min_replicas=1)
    engine.run(lambda: scalers.append(ScheduleScaler("s", ScheduleScalerArgs(calendar=calendar, start=SCHEDULE_START))))
    assert scalers[0].scaling_schedules == [] and scalers[0].base_min == 1


def test_image_name_follows_the_content_hash() -> None:
    args = BakedImageArgs(project=PROJECT, zone="asia-northeast1-a", worker_image=WORKER_IMAGE)
    assert args.image_name == f"asyncinfer-gpu-{args.content_hash[:12]}"
    assert args.content_hash == BakedImageArgs(project=PROJECT, zone="x", worker_image=WORKER_IMAGE).content_hash
    other = BakedImageArgs(project=PROJECT, zone="asia-northeast1-a", worker_image=WORKER_IMAGE + "1")
    assert other.image_name != args.image_name
    assert BakedImageArgs(project=PROJECT, zone="z", worker_image=WORKER_IMAGE, driver_branch="580").content_hash != (
        args.content_hash
    )


def test_hash_covers_template_and_scripts(tmp_path: Path) -> None:
    shutil.copytree(BAKE_DIR, tmp_path / "images")
    before = content_hash(tmp_path / "images", WORKER_IMAGE)
    assert before == content_hash(BAKE_DIR, WORKER_IMAGE)
    script = tmp_path / "images" / "scripts" / "cleanup.sh"
    script.write_text(script.read_text() + "\n# changed\n")
    assert content_hash(tmp_path / "images", WORKER_IMAGE) != before


def test_baked_image_builds_with_packer_on_change(engine: Engine) -> None:
    args = BakedImageArgs(project=PROJECT, zone="asia-northeast1-a", worker_image=WORKER_IMAGE)
    links: list[str] = []

    def build() -> object:
        image = BakedImage("img", args)
        return image.self_link.apply(links.append)

    graph = engine.run(build)
    bake = graph.one(COMMAND)
    assert bake.parent == graph.one("asyncinfer:index:BakedImage").urn
    # The tag was resolved to a digest (the mocks answer the lookup): the hash and the bake use it.
    lookups = [args for token, args in engine.monitor.recording.calls if token == "command:local:run"]
    assert len(lookups) == 1 and "gcloud artifacts docker images describe" in lookups[0]["command"]
    pinned_hash = bake.inputs["triggers"][0]
    assert pinned_hash != args.content_hash
    name = f"asyncinfer-gpu-{pinned_hash[:12]}"
    assert bake.inputs["environment"]["PKR_VAR_image_name"] == name
    assert bake.inputs["environment"]["PKR_VAR_worker_image"].startswith(
        "asia-northeast1-docker.pkg.dev/test-project/asyncinfer/symbols@sha256:"
    )
    assert "packer build" in bake.inputs["create"]
    assert links == [f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/images/{name}"]


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        ({"existing_image": "my-image"}, "projects/test-project/global/images/my-image"),
        ({"existing_family": "my-family"}, "projects/test-project/global/images/family/my-family"),
        ({"existing_image": "projects/p/global/images/x"}, "projects/p/global/images/x"),
    ],
)
def test_existing_image_builds_nothing(engine: Engine, existing: dict[str, str], expected: str) -> None:
    links: list[str] = []
    args = BakedImageArgs(project=PROJECT, zone="asia-northeast1-a", worker_image=WORKER_IMAGE, **existing)
    graph = engine.run(lambda: BakedImage("img", args).self_link.apply(links.append))
    assert graph.count(COMMAND) == 0
    assert links[0].endswith(expected)


def test_existing_image_and_family_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="not both"):
        BakedImageArgs(project=PROJECT, zone="z", worker_image=WORKER_IMAGE, existing_image="a", existing_family="b")


def test_provisioning_scripts_are_strict_bash() -> None:
    for script in [
        *sorted((BAKE_DIR / "scripts").glob("*.sh")),
        package_dir("boot") / "startup.sh",
        package_dir("boot") / "shutdown.sh",
    ]:
        text = script.read_text()
        assert text.startswith("#!/bin/bash"), script
        assert "set -" in text, script
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script}: {result.stderr}"
