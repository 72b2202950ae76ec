"""The startup script exactly as the whole stack ships it (the program under Pulumi's mocks, the
instance template's metadata), run with bash: it runs the digest the bake pinned, with the stack's
claim-check bucket as the results prefix."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pulumi

from asyncinfer.components.model_stack import program
from tests.boot.metadata_server import FakeMetadataServer
from tests.boot.stubs import install_stubs, stub_environment
from tests.components.conftest import SCHEDULE_START, Engine
from tests.components.test_stack import symbols_config


def shipped_metadata() -> dict[str, str]:
    try:
        graph = Engine().run(lambda: program(SCHEDULE_START), config=symbols_config())
    finally:
        pulumi.runtime.set_all_config({})
    template = graph.one("gcp:compute/instanceTemplate:InstanceTemplate")
    bucket = graph.one("gcp:storage/bucket:Bucket")
    return {**template.inputs["metadata"], "bucket": bucket.inputs["name"]}


def test_the_shipped_startup_script_runs_the_pinned_digest(tmp_path: Path) -> None:
    metadata = shipped_metadata()
    script = tmp_path / "startup.sh"
    script.write_text(metadata["startup-script"])
    line = next(x for x in metadata["startup-script"].splitlines() if x.startswith("WORKER_IMAGE="))
    pinned = line.removeprefix("WORKER_IMAGE=")
    assert "@sha256:" in pinned
    (tmp_path / "ops").mkdir()
    stubs = install_stubs(tmp_path, registry={}, local_tags={})
    with FakeMetadataServer() as server:
        done = subprocess.run(
            ["bash", str(script)],
            env=stub_environment(
                stubs,
                METADATA_HOST=server.host,
                ASYNCINFER_STATE_DIR=str(tmp_path / "run"),
                ASYNCINFER_ROOT_HOME=str(tmp_path / "root"),
                ASYNCINFER_OPS_AGENT_CONFIG=str(tmp_path / "ops" / "config.yaml"),
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    runs = [a for a in stubs.argvs("docker") if a[0] == "run"]
    assert ["pull", pinned] in stubs.argvs("docker")
    assert len(runs) == 1 and runs[0][-1] == pinned
    env_file = Path(runs[0][runs[0].index("--env-file") + 1]).read_text()
    assert f"ASYNCINFER_RESULTS_URI_PREFIX=gs://{metadata['bucket']}/results" in env_file
    assert metadata["enable-guest-attributes"] == "TRUE"
    assert server.state.last("asyncinfer/boot-status") == f"running {pinned}"
