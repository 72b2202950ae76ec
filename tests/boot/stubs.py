"""Stand-ins for what a GPU VM has and this machine lacks: docker, nvidia-smi, gcloud, systemctl.

Each stub is a small Python program on PATH that appends its argv (and the HOME it ran with) to a
JSON-lines call log, and keeps docker's local images and the registry's tags in a JSON state file,
so a test can push a tag again and watch the next boot pull it.
"""

from __future__ import annotations

import json
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HEADER = f"""#!{sys.executable}
import json, os, sys, time
from pathlib import Path
STATE = Path(os.environ["STUB_STATE"])
def record():
    with open(os.environ["STUB_CALLS"], "a") as log:
        log.write(json.dumps({{"tool": Path(sys.argv[0]).name, "argv": sys.argv[1:],
                              "home": os.environ.get("HOME"),
                              "docker_config": os.environ.get("DOCKER_CONFIG")}}) + "\\n")
def load():
    return json.loads(STATE.read_text())
def save(state):
    STATE.write_text(json.dumps(state))
record()
"""

_DOCKER = """
args = sys.argv[1:]
state = load()
def repo_of(ref):
    ref = ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    return head + "/" + last.split(":", 1)[0]
def local_has(ref):
    return ref in state["local_tags"] or ref in state["local_digests"]
if args[:2] == ["image", "inspect"]:
    ref = args[-1]
    if not local_has(ref):
        print(f"Error: No such image: {ref}", file=sys.stderr); sys.exit(1)
    if "--format" in args:
        digest = state["local_tags"].get(ref) or ref.split("@", 1)[1]
        print(f"{repo_of(ref)}@{digest}")
    sys.exit(0)
if args[0] == "pull":
    ref = args[1]
    if state.get("pull_fails"):
        print("pull failed: unauthorized", file=sys.stderr); sys.exit(1)
    if "@" in ref:
        state["local_digests"].append(ref)
    else:
        digest = state["registry"][ref]
        state["local_tags"][ref] = digest
        state["local_digests"].append(f"{repo_of(ref)}@{digest}")
    save(state); sys.exit(0)
if args[0] == "rm":
    sys.exit(0)
if args[0] == "run":
    print("c0ffee"); sys.exit(0)
if args[0] == "stop":
    time.sleep(float(os.environ.get("STUB_DOCKER_STOP_S", "0")))
    sys.exit(0)
print(f"docker stub: unexpected {args}", file=sys.stderr); sys.exit(2)
"""

_NVIDIA_SMI = """
if os.environ.get("STUB_NVIDIA_FAILS"):
    print("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", file=sys.stderr)
    sys.exit(9)
print(os.environ.get("STUB_DRIVER_VERSION", "570.124.06"))
"""

_RECORD_ONLY = """
sys.exit(0)
"""


@dataclass
class Stubs:
    bin_dir: Path
    calls_path: Path
    state_path: Path

    def calls(self, tool: str | None = None) -> list[dict[str, Any]]:
        if not self.calls_path.exists():
            return []
        rows = [json.loads(line) for line in self.calls_path.read_text().splitlines()]
        return [r for r in rows if tool is None or r["tool"] == tool]

    def argvs(self, tool: str) -> list[list[str]]:
        return [r["argv"] for r in self.calls(tool)]

    def state(self) -> dict[str, Any]:
        return dict(json.loads(self.state_path.read_text()))

    def update(self, **changes: Any) -> None:
        state = self.state()
        state.update(changes)
        self.state_path.write_text(json.dumps(state))

    def remove(self, tool: str) -> None:
        (self.bin_dir / tool).unlink()

    @property
    def path(self) -> str:
        # No /usr/local/bin: this machine's own docker client lives there and must not answer.
        return f"{self.bin_dir}:/usr/bin:/bin"


def install_stubs(root: Path, *, registry: dict[str, str], local_tags: dict[str, str]) -> Stubs:
    bin_dir = root / "bin"
    bin_dir.mkdir()
    stubs = Stubs(bin_dir, root / "calls.jsonl", root / "state.json")
    local_digests = [f"{ref.rsplit(':', 1)[0]}@{digest}" for ref, digest in local_tags.items()]
    stubs.state_path.write_text(
        json.dumps({"registry": registry, "local_tags": local_tags, "local_digests": local_digests})
    )
    bodies = {"docker": _DOCKER, "nvidia-smi": _NVIDIA_SMI, "gcloud": _RECORD_ONLY, "systemctl": _RECORD_ONLY}
    for tool, body in bodies.items():
        path = bin_dir / tool
        path.write_text(_HEADER + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return stubs


def stub_environment(stubs: Stubs, **extra: str) -> dict[str, str]:
    env = {
        "PATH": stubs.path,
        "STUB_CALLS": str(stubs.calls_path),
        "STUB_STATE": str(stubs.state_path),
        "LANG": "C.UTF-8",
        # A startup script's environment on GCE has no HOME of root's; the script must set it.
        "HOME": "/nonexistent-startup-home",
    }
    env.update(extra)
    return env
