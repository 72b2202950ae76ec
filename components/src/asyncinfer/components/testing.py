"""Run a Pulumi program under Pulumi's mocks and record the resource graph it declares.

No Pulumi CLI and no cloud credentials: the engine is a mock that records every resource (type, name,
inputs, parent) and answers with the ids and self links the real provider would. A consumer tests its
own stack the way asyncinfer's tests do:

    from asyncinfer.components import ModelStack, ModelStackArgs
    from asyncinfer.components.testing import run_under_mocks

    graph = run_under_mocks(lambda: ModelStack("symbols", ModelStackArgs(...)))
    assert sum(r.type == "gcp:compute/autoscaler:Autoscaler" for r in graph) == 1

`asyncinfer plan` renders the same graph.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks

DEFAULT_STACK = "symbols"
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
    "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager": ("instanceGroupManagers", "regional"),
    "gcp:compute/regionAutoscaler:RegionAutoscaler": ("autoscalers", "regional"),
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
    #: customTimeouts as the engine sees them ({"create": "45m", ...}; empty ones left out).
    custom_timeouts: dict[str, str] = field(default_factory=dict)


class RecordingMocks(Mocks):
    """Mocks that remember every resource and give each the `name`, `id` and `selfLink` GCP would.

    Names matter: autoscaler and alert filters are built from resource names, and a mock without a
    default `name` would leave them unknown (docs/PLATFORM.md).
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
            location = {"zonal": f"zones/{inputs.get('zone', '')}/", "regional": f"regions/{inputs.get('region', '')}/"}
            path = f"projects/{project}/{location.get(scope, '')}{collection}/{name}"
            resource_id = path
            outputs["selfLink"] = f"{COMPUTE_API}/{path}"
            outputs["selfLinkUnique"] = f"{COMPUTE_API}/{path}?uniqueId={serial}"
        if args.typ == "gcp:serviceaccount/account:Account":
            outputs["email"] = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
            resource_id = f"projects/{project}/serviceAccounts/{outputs['email']}"
        if args.typ == "gcp:projects/serviceIdentity:ServiceIdentity":
            agent = str(inputs.get("service", "")).split(".", 1)[0]
            outputs["email"] = f"service-{PROJECT_NUMBER}@gcp-sa-{agent}.iam.gserviceaccount.com"
            outputs["member"] = f"serviceAccount:{outputs['email']}"
        if args.typ == "command:local:Command":
            outputs["stdout"] = "mocked: nothing was baked"
        with self._lock:
            self._by_key[(args.typ, args.name)] = inputs
        return (resource_id if args.custom else None), outputs

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.calls.append((args.token, dict(args.args)))
        if args.token == "command:local:run":
            # BakedImage's digest lookup (`gcloud artifacts docker images describe`): a stable fake digest.
            fake = "sha256:" + hashlib.sha256(str(args.args.get("command")).encode()).hexdigest()
            return {"command": args.args.get("command"), "stdout": fake + "\n", "stderr": ""}, []
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
        self.timeouts: dict[str, dict[str, str]] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        self.order.append(response.urn)
        self.parents[response.urn] = request.parent
        self.dependencies[response.urn] = list(request.dependencies)
        self.options[response.urn] = (bool(request.deleteBeforeReplace), list(request.replaceOnChanges))
        timeouts = request.customTimeouts
        self.timeouts[response.urn] = {
            k: v for k in ("create", "update", "delete") if (v := str(getattr(timeouts, k, "") or ""))
        }
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
                    custom_timeouts=self.timeouts.get(urn, {}),
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
