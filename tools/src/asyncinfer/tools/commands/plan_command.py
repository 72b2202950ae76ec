"""`asyncinfer plan`: a stack's resource graph, computed under Pulumi's mocks.

It runs the same program as `pulumi up` (`asyncinfer.components.model_stack.program`) with the configuration of
`Pulumi.<stack>.yaml`, but against a mock engine, so it needs neither the Pulumi CLI nor cloud
credentials. It prints the graph as a tree with each resource's key settings and writes DOT and PNG
renderings. The recording mocks live in asyncinfer.components.testing, public for consumers' tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi

from asyncinfer.components.testing import (
    DEFAULT_STACK,
    STACK_TYPE,
    RecordedResource,
    run_under_mocks,
    urn_type,
)

DEFAULT_OUT = Path(".asyncinfer/plan")


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
        # The price the workers put into each result's cost (the stack config's, or the assumed table's).
        startup = str((i.get("metadata") or {}).get("startup-script"))
        price = re.search(r"ASYNCINFER_PRICE_PER_HOUR_USD=([0-9.]+)", startup)
        if price:
            parts.append(f"${price.group(1)}/h")
    if t == "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager":
        parts.append(f"{i.get('region')}: {','.join(i.get('distributionPolicyZones') or [])}")
        parts.append(str(i.get("distributionPolicyTargetShape")))
        healing = i.get("autoHealingPolicies") or {}
        parts.append(f"autoheal after {_n(healing.get('initialDelaySec'))}s")
    if t == "gcp:compute/regionAutoscaler:RegionAutoscaler":
        policy = i.get("autoscalingPolicy") or {}
        backlog = [m for m in policy.get("metrics") or [] if m.get("singleInstanceAssignment") is not None]
        parts += [
            str(i.get("region")),
            f"min {_n(policy.get('minReplicas'))} max {_n(policy.get('maxReplicas'))}",
            # One backlog metric per priority lane: each lane's assignment.
            " / ".join(f"{_n(round(m.get('singleInstanceAssignment'), 1))}" for m in backlog) + " msgs/VM",
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
    from asyncinfer.components.model_stack import program
    from asyncinfer.components.stack_config import parse_stack_config

    # Validate before the mock engine exists: a bad key must not get as far as a resource.
    parsed = parse_stack_config(config, stack)
    pulumi.runtime.set_all_config(dict(config))
    return run_under_mocks(lambda: program(schedule_start), project=parsed.project, stack=stack)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from asyncinfer.components.stack_config import StackConfigError

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
