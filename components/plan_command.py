"""`asyncinfer plan`: a stack's resource graph, computed under Pulumi's mocks.

It runs the same program as `pulumi up` (`components.model_stack.program`) with the configuration of
`Pulumi.<stack>.yaml`, but against a mock engine, so it needs neither the Pulumi CLI nor cloud
credentials. It prints the graph as a tree with each resource's key settings and writes DOT and PNG
renderings. The recording mocks here are also what the component tests assert on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks

DEFAULT_STACK = "symbols"
DEFAULT_OUT = Path(".asyncinfer/plan")
DEFAULT_PROJECT = "mock-project"
PROJECT_NUMBER = "123456789012"
STACK_TYPE = "pulumi:pulumi:Stack"
COMPUTE_API = "https://www.googleapis.com/compute/v1"

#: Resource type -> (collection in its id, whether the collection is zonal). Gives mocked resources
#: the ids and self links the real provider would, so names built from them read true.
_ID_SHAPES: dict[str, tuple[str, str]] = {
    "gcp:pubsub/topic:Topic": ("topics", "global"),
    "gcp:pubsub/subscription:Subscription": ("subscriptions", "global"),
    "gcp:pubsub/schema:Schema": ("schemas", "global"),
    "gcp:compute/instanceTemplate:InstanceTemplate": ("global/instanceTemplates", "global"),
    "gcp:compute/healthCheck:HealthCheck": ("global/healthChecks", "global"),
    "gcp:compute/firewall:Firewall": ("global/firewalls", "global"),
    "gcp:compute/instanceGroupManager:InstanceGroupManager": ("instanceGroupManagers", "zonal"),
    "gcp:compute/autoscaler:Autoscaler": ("autoscalers", "zonal"),
}


@dataclass
class RecordedResource:
    urn: str
    type: str
    name: str
    custom: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    parent: str | None = None
    dependencies: list[str] = field(default_factory=list)
    registered_outputs: bool = False
    #: Resource options the engine sees (the mocks' MockResourceArgs leaves them out).
    delete_before_replace: bool = False
    replace_on_changes: list[str] = field(default_factory=list)


class RecordingMocks(Mocks):
    """Mocks that remember every resource and give each the `name`, `id` and `selfLink` GCP would.

    Names matter: autoscaler and alert filters are built from resource names, and a mock without a
    default `name` would leave them unknown (DESIGN.md section 6).
    """

    def __init__(self, project: str = DEFAULT_PROJECT) -> None:
        self.project = project
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._by_key: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._counter = 0

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        outputs = dict(inputs)
        project = str(inputs.get("project") or self.project)
        with self._lock:
            self._counter += 1
            serial = self._counter
        name = inputs.get("name")
        if not name and inputs.get("namePrefix"):
            name = f"{inputs['namePrefix']}{serial:012d}"
        name = str(name or args.name)
        outputs["name"] = name
        outputs.setdefault("project", project)
        resource_id = f"{args.name}_id"
        shape = _ID_SHAPES.get(args.typ)
        if shape is not None:
            collection, scope = shape
            zone = inputs.get("zone", "")
            path = (
                f"projects/{project}/zones/{zone}/{collection}/{name}"
                if scope == "zonal"
                else (f"projects/{project}/{collection}/{name}")
            )
            resource_id = path
            outputs["selfLink"] = f"{COMPUTE_API}/{path}"
            outputs["selfLinkUnique"] = f"{COMPUTE_API}/{path}?uniqueId={serial}"
        if args.typ == "gcp:serviceaccount/account:Account":
            outputs["email"] = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
            resource_id = f"projects/{project}/serviceAccounts/{outputs['email']}"
        if args.typ == "command:local:Command":
            outputs["stdout"] = "mocked: nothing was baked"
        with self._lock:
            self._by_key[(args.typ, args.name)] = inputs
        return (resource_id if args.custom else None), outputs

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.calls.append((args.token, dict(args.args)))
        if args.token == "gcp:organizations/getProject:getProject":
            project = str(args.args.get("projectId") or self.project)
            return {"number": PROJECT_NUMBER, "projectId": project, "name": project, "id": project}, []
        return {}, []

    def inputs_of(self, typ: str, name: str) -> dict[str, Any]:
        return self._by_key.get((typ, name), {})


class RecordingMonitor(MockMonitor):
    """The mock engine, remembering what a plain MockMonitor forgets: parents, dependencies, and
    which components registered their outputs."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks
        self.order: list[str] = []
        self.parents: dict[str, str] = {}
        self.dependencies: dict[str, list[str]] = {}
        self.registered_outputs: set[str] = set()
        self.options: dict[str, tuple[bool, list[str]]] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        self.order.append(response.urn)
        self.parents[response.urn] = request.parent
        self.dependencies[response.urn] = list(request.dependencies)
        self.options[response.urn] = (bool(request.deleteBeforeReplace), list(request.replaceOnChanges))
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        self.registered_outputs.add(request.urn)
        return super().RegisterResourceOutputs(request)

    def graph(self) -> list[RecordedResource]:
        result = []
        for urn in self.order:
            type_, name = urn_type(urn), urn.rsplit("::", 1)[-1]
            if type_ == STACK_TYPE:
                continue
            registration = self.resources.get(urn)
            result.append(
                RecordedResource(
                    urn=urn,
                    type=type_,
                    name=name,
                    custom=bool(registration and registration.id),
                    inputs=self.recording.inputs_of(type_, name),
                    outputs=dict(registration.state) if registration else {},
                    id=registration.id if registration else None,
                    parent=self.parents.get(urn) or None,
                    dependencies=self.dependencies.get(urn, []),
                    registered_outputs=urn in self.registered_outputs,
                    delete_before_replace=self.options.get(urn, (False, []))[0],
                    replace_on_changes=self.options.get(urn, (False, []))[1],
                )
            )
        return result


def urn_type(urn: str) -> str:
    """The resource's own type: the last element of the URN's type chain (parents come first)."""
    return urn.split("::")[2].split("$")[-1]


def install_mocks(project: str = DEFAULT_PROJECT, stack: str = DEFAULT_STACK) -> RecordingMonitor:
    monitor = RecordingMonitor(RecordingMocks(project))
    # preview=False: under a preview, outputs the mocks do not return would stay unknown.
    pulumi.runtime.set_mocks(monitor.recording, project="asyncinfer", stack=stack, preview=False, monitor=monitor)
    return monitor


def run_under_mocks(
    build: Callable[[], Any],
    *,
    project: str = DEFAULT_PROJECT,
    stack: str = DEFAULT_STACK,
    monitor: RecordingMonitor | None = None,
) -> list[RecordedResource]:
    """Run `build` against a mock engine, wait for every output, return the recorded graph.

    `build` may return an Output (or anything with `outputs()`): it is awaited, so assertions inside
    its `apply` run before this returns.
    """
    monitor = monitor or install_mocks(project, stack)

    @pulumi.runtime.test
    def _run() -> Any:
        built = build()
        if isinstance(built, pulumi.Output):
            return built
        outputs = built.outputs() if hasattr(built, "outputs") else {}
        return pulumi.Output.all(*outputs.values()) if outputs else None

    _run()
    return monitor.graph()


# ---- the stack file


def read_stack_file(path: Path) -> dict[str, str]:
    """Config of a Pulumi.<stack>.yaml, flattened to strings the way the Pulumi CLI hands them over."""
    import yaml

    document = yaml.safe_load(path.read_text()) or {}
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: 'config' must be a mapping of keys to values.")
    flat: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            # Encrypted values cannot be read without the stack's secrets provider.
            flat[str(key)] = "<secret>"
        elif isinstance(value, bool):
            flat[str(key)] = "true" if value else "false"
        elif isinstance(value, list | dict):
            flat[str(key)] = json.dumps(value, default=str)
        else:
            flat[str(key)] = str(value)
    return flat


# ---- presentation


def _n(value: Any) -> str:
    """Numbers come back from the engine as floats; 8080.0 reads wrong."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def key_settings(resource: RecordedResource) -> str:
    """One line of what matters about a resource, for the tree and the graph."""
    i = resource.inputs
    t = resource.type
    parts: list[str] = []
    if t.endswith(("Topic", "Subscription", "Schema")) or t == "gcp:serviceaccount/account:Account":
        parts.append(str(resource.outputs.get("name", "")) if "accountId" not in i else str(i["accountId"]))
    if t == "gcp:pubsub/subscription:Subscription":
        parts.append(f"ack {_n(i.get('ackDeadlineSeconds'))}s")
        dead = i.get("deadLetterPolicy")
        if dead:
            parts.append(f"dead-letter after {_n(dead.get('maxDeliveryAttempts'))}")
        retry = i.get("retryPolicy")
        if retry:
            parts.append(f"retry {retry.get('minimumBackoff')}-{retry.get('maximumBackoff')}")
        parts.append(f"retain {i.get('messageRetentionDuration')}")
    if "role" in i:
        parts.append(f"{i['role']} -> {str(i.get('member', '')).split(':', 1)[-1]}")
    if t == "gcp:compute/instanceTemplate:InstanceTemplate":
        gpu = (i.get("guestAccelerators") or [{}])[0]
        scheduling = i.get("scheduling") or {}
        external = any(n.get("accessConfigs") for n in i.get("networkInterfaces") or [])
        parts += [
            str(i.get("machineType")),
            f"{_n(gpu.get('count'))} x {gpu.get('type')}",
            f"{scheduling.get('provisioningModel')}/{scheduling.get('instanceTerminationAction')}",
            "external IP" if external else "no external IP",
        ]
    if t == "gcp:compute/instanceGroupManager:InstanceGroupManager":
        parts.append(str(i.get("zone")))
        healing = i.get("autoHealingPolicies") or {}
        parts.append(f"autoheal after {_n(healing.get('initialDelaySec'))}s")
    if t == "gcp:compute/autoscaler:Autoscaler":
        policy = i.get("autoscalingPolicy") or {}
        metric = (policy.get("metrics") or [{}])[0]
        parts += [
            str(i.get("zone")),
            f"min {_n(policy.get('minReplicas'))} max {_n(policy.get('maxReplicas'))}",
            f"{_n(metric.get('singleInstanceAssignment'))} msgs/VM",
            f"{len(policy.get('scalingSchedules') or [])} schedules",
            f"cooldown {_n(policy.get('cooldownPeriod'))}s",
        ]
    if t == "gcp:compute/healthCheck:HealthCheck":
        http = i.get("httpHealthCheck") or {}
        parts.append(f"HTTP :{_n(http.get('port'))}{http.get('requestPath')}")
    if t == "gcp:compute/firewall:Firewall":
        parts.append(f"{','.join(i.get('sourceRanges') or [])} -> tcp:{(i.get('allows') or [{}])[0].get('ports')}")
    if t == "gcp:monitoring/alertPolicy:AlertPolicy":
        parts.append(str(i.get("displayName")))
    if t == "command:local:Command":
        parts.append(f"packer build, trigger {str((i.get('triggers') or [''])[0])[:12]}")
    return ", ".join(p for p in parts if p)


def _children(graph: list[RecordedResource]) -> dict[str | None, list[RecordedResource]]:
    known = {r.urn for r in graph}
    children: dict[str | None, list[RecordedResource]] = {}
    for r in graph:
        if r.type == STACK_TYPE:
            continue
        parent = r.parent if r.parent in known and r.parent and urn_type(r.parent) != STACK_TYPE else None
        children.setdefault(parent, []).append(r)
    return children


def render_tree(graph: list[RecordedResource], stack: str) -> Any:
    from rich.tree import Tree

    children = _children(graph)
    root = Tree(f"[bold]stack {stack}[/bold]")

    def add(node: Any, parent: str | None) -> None:
        for r in children.get(parent, []):
            settings = key_settings(r)
            label = f"[bold]{r.name}[/bold] [dim]{r.type}[/dim]" + (f"  {settings}" if settings else "")
            add(node.add(label), r.urn)

    add(root, None)
    return root


def _dot_id(index: int) -> str:
    return f"r{index}"


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def render_dot(graph: list[RecordedResource], stack: str) -> str:
    resources = [r for r in graph if r.type != STACK_TYPE]
    index = {r.urn: n for n, r in enumerate(resources)}
    lines = [
        f'digraph "{_dot_escape(stack)}" {{',
        "  rankdir=LR;",
        '  node [shape=box, fontname="Helvetica", fontsize=10];',
        "  // solid: parent -> child; dashed: depends on",
    ]
    for n, r in enumerate(resources):
        label = "\\n".join(_dot_escape(part) for part in [r.name, r.type, *textwrap.wrap(key_settings(r), 48)])
        style = "" if r.custom else ', style="rounded,filled", fillcolor="#eef3fb"'
        lines.append(f'  {_dot_id(n)} [label="{label}"{style}];')
    for r in resources:
        if r.parent in index:
            lines.append(f"  {_dot_id(index[r.parent])} -> {_dot_id(index[r.urn])};")
        for dep in r.dependencies:
            if dep in index and dep != r.parent:
                lines.append(f"  {_dot_id(index[r.urn])} -> {_dot_id(index[dep])} [style=dashed, color=gray];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_png(dot_text: str, graph: list[RecordedResource], path: Path) -> str:
    """PNG via graphviz when its `dot` binary is installed, else a simpler tree drawn by matplotlib."""
    dot = shutil.which("dot")
    if dot:
        result = subprocess.run([dot, "-Tpng", "-o", str(path)], input=dot_text, text=True, capture_output=True)
        if result.returncode == 0:
            return "graphviz"
    _render_png_matplotlib(graph, path)
    return "matplotlib"


def _render_png_matplotlib(graph: list[RecordedResource], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    children = _children(graph)
    rows: list[tuple[int, RecordedResource]] = []

    def walk(parent: str | None, depth: int) -> None:
        for r in children.get(parent, []):
            rows.append((depth, r))
            walk(r.urn, depth + 1)

    walk(None, 0)
    height = max(2.0, 0.28 * len(rows))
    fig, ax = plt.subplots(figsize=(14, height))
    ax.set_axis_off()
    ax.set_xlim(0, 10)
    ax.set_ylim(-len(rows), 1)
    position: dict[str, tuple[float, float]] = {}
    for row, (depth, r) in enumerate(rows):
        x, y = 0.2 + depth * 0.6, -row
        position[r.urn] = (x, y)
        color = "#1f4e8c" if not r.custom else "black"
        ax.text(x, y, f"{r.name}  ({r.type.rsplit(':', 1)[-1]})", fontsize=7, va="center", color=color)
        if r.parent in position:
            px, py = position[r.parent]
            ax.plot([px + 0.05, px + 0.05, x - 0.05], [py - 0.3, y, y], color="gray", linewidth=0.5)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# ---- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", default=DEFAULT_STACK, help="read Pulumi.<STACK>.yaml (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where DOT and PNG go (default: %(default)s)")
    parser.add_argument("--dir", type=Path, default=Path("."), help="the directory holding Pulumi.<STACK>.yaml")
    parser.add_argument("--no-png", action="store_true", help="write only the DOT file")


def plan(config: Mapping[str, str], stack: str, schedule_start: dt.date | None = None) -> list[RecordedResource]:
    """Validate `config` and run the stack's program under mocks; StackConfigError if invalid."""
    from components.model_stack import program
    from components.stack_config import parse_stack_config

    # Validate before the mock engine exists: a bad key must not get as far as a resource.
    parsed = parse_stack_config(config, stack)
    pulumi.runtime.set_all_config(dict(config))
    return run_under_mocks(lambda: program(schedule_start), project=parsed.project, stack=stack)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from components.stack_config import StackConfigError

    console = Console()
    err = Console(stderr=True)
    stack_file = Path(args.dir) / f"Pulumi.{args.stack}.yaml"
    if not stack_file.is_file():
        err.print(f"[red]no stack file {stack_file}[/red]: create it (see Pulumi.symbols.yaml) or pass --stack NAME.")
        return 2
    try:
        config = read_stack_file(stack_file)
        graph = plan(config, args.stack)
    except StackConfigError as exc:
        err.print(f"[red bold]invalid configuration in {stack_file}[/red bold]")
        err.print(str(exc), markup=False, highlight=False)
        return 2
    except ValueError as exc:
        err.print(f"[red]{stack_file}: {exc}[/red]")
        return 2

    console.print(render_tree(graph, args.stack))
    counts = Counter(r.type for r in graph if r.type != STACK_TYPE)
    custom = sum(n for t, n in counts.items() if not t.startswith("asyncinfer:"))
    console.print(f"\n{custom} cloud resources in {len(counts)} types, {sum(counts.values()) - custom} components:")
    for type_, n in sorted(counts.items()):
        console.print(f"  {n:3d}  {type_}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dot_text = render_dot(graph, args.stack)
    dot_path = out / f"{args.stack}.dot"
    dot_path.write_text(dot_text)
    (out / f"{args.stack}.json").write_text(
        json.dumps(
            [{"urn": r.urn, "type": r.type, "parent": r.parent, "inputs": r.inputs} for r in graph],
            indent=2,
            default=str,
        )
    )
    console.print(f"\nwrote {dot_path}")
    if not args.no_png:
        png_path = out / f"{args.stack}.png"
        renderer = render_png(dot_text, graph, png_path)
        console.print(f"wrote {png_path} ({renderer})")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="asyncinfer plan")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
