"""Spot GPU workers that pull from one subscription and scale on its backlog, down to zero.

One zonal managed instance group per zone: GCE does not support per-group metrics (a subscription's
backlog) on regional MIGs, and only per-group metrics can scale to zero (docs/PLATFORM.md). Every
zonal autoscaler sees the whole backlog, so each gets the pool's assignment times the zone count
(`asyncinfer.core.policy.zonal_share`).
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from asyncinfer.components.package_files import boot_script
from asyncinfer.components.schedule_scaler import ScheduleScaler
from asyncinfer.core.policy import (
    GCE_METRIC_LAG_S,
    GCE_METRIC_PERIOD_S,
    ScalingPolicy,
    ZonalShare,
    reaction_time_s,
    zonal_share,
)
from asyncinfer.core.worker_settings import worker_environment

BACKLOG_METRIC = "pubsub.googleapis.com/subscription/num_undelivered_messages"
#: Source ranges of Google's health checkers; without a firewall rule for them every VM looks dead
#: and the autohealer recreates it forever.
HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
#: Spot preemption leaves about 30 s; `docker stop` must end (SIGKILL included) before the power-off.
PREEMPTION_NOTICE_S = 30
STOP_TIMEOUT_S = 25
METRIC_PERIOD_S = int(GCE_METRIC_PERIOD_S)
METRIC_LAG_S = int(GCE_METRIC_LAG_S)
#: VM start to worker ready with the baked image (to be measured); an unbaked image adds the
#: driver install and the container pull at every scale-out (the seed measured 3.5 + 3.5 min).
BAKED_BOOT_TO_READY_S = 90
UNBAKED_EXTRA_S = 420


#: GPU type -> machine-type prefixes it can be attached to (or comes with).
GPU_MACHINE_SERIES: dict[str, tuple[str, ...]] = {
    "nvidia-tesla-t4": ("n1-",),
    "nvidia-tesla-v100": ("n1-",),
    "nvidia-tesla-p4": ("n1-",),
    "nvidia-l4": ("g2-standard-",),
    "nvidia-tesla-a100": ("a2-highgpu-", "a2-megagpu-"),
    "nvidia-a100-80gb": ("a2-ultragpu-",),
    "nvidia-h100-80gb": ("a3-highgpu-",),
}
KNOWN_GPU_TYPES = tuple(GPU_MACHINE_SERIES)
#: N1 takes 1, 2, 4 (or 8 V100s) GPUs; the accelerator-optimized series come with a fixed count.
_N1_GPU_COUNTS = {"nvidia-tesla-t4": (1, 2, 4), "nvidia-tesla-p4": (1, 2, 4), "nvidia-tesla-v100": (1, 2, 4, 8)}
_G2_GPU_COUNTS = {4: 1, 8: 1, 12: 1, 16: 1, 24: 2, 32: 1, 48: 4, 96: 8}


class PoolConfigError(ValueError):
    """A worker pool setting that GCE would reject or that cannot work; names the setting and the fix."""


def attached_gpu_count(machine_type: str) -> int | None:
    """GPUs that come with an accelerator-optimized machine type; None for N1 (GPUs are chosen)."""
    if machine_type.startswith("g2-standard-"):
        vcpus = machine_type.rsplit("-", 1)[-1]
        return _G2_GPU_COUNTS.get(int(vcpus)) if vcpus.isdigit() else None
    match = re.fullmatch(r"a[23]-(?:highgpu|megagpu|ultragpu)-(\d+)g", machine_type)
    return int(match.group(1)) if match else None


def validate_gpu(gpu_type: str, machine_type: str, gpu_count: int) -> None:
    """Reject GPU/machine combinations before GCE does, with the fix in the message."""
    if gpu_type not in GPU_MACHINE_SERIES:
        raise PoolConfigError(f"gpu type {gpu_type!r} is not known; use one of {', '.join(KNOWN_GPU_TYPES)}.")
    series = GPU_MACHINE_SERIES[gpu_type]
    if not machine_type.startswith(series):
        raise PoolConfigError(
            f"machine type {machine_type!r} cannot carry {gpu_type}; use one of {', '.join(s + '*' for s in series)} "
            "machine type (e.g. g2-standard-4 for nvidia-l4, a2-highgpu-1g for nvidia-tesla-a100, "
            "n1-standard-8 for nvidia-tesla-t4)."
        )
    if machine_type.startswith("n1-"):
        allowed = _N1_GPU_COUNTS[gpu_type]
        if gpu_count not in allowed:
            raise PoolConfigError(f"gpu count {gpu_count} is not possible for {gpu_type} on N1; use one of {allowed}.")
        return
    fixed = attached_gpu_count(machine_type)
    if fixed is None:
        raise PoolConfigError(f"machine type {machine_type!r} is not a known {gpu_type} shape; check its name.")
    if gpu_count != fixed:
        raise PoolConfigError(
            f"machine type {machine_type} comes with {fixed} x {gpu_type}, but gpu count is {gpu_count}; "
            f"set the gpu count to {fixed} or pick another machine type."
        )


def service_account_id(model: str) -> str:
    """A service account id (6-30 chars) for a model's workers, shortened with a hash when needed."""
    candidate = f"{model}-worker"
    if len(candidate) <= 30:
        return candidate
    digest = hashlib.sha256(model.encode()).hexdigest()[:6]
    return f"{model[:21].rstrip('-')}-w-{digest}"


@dataclass(frozen=True, kw_only=True)
class CustomMetric:
    """A per-instance Cloud Monitoring signal (e.g. GPU utilization); it cannot scale a group to zero."""

    name: str
    target: float
    #: GAUGE, DELTA_PER_SECOND or DELTA_PER_MINUTE.
    type: str = "GAUGE"
    filter: str | None = None


@dataclass(frozen=True, kw_only=True)
class GpuWorkerPoolArgs:
    project: pulumi.Input[str]
    region: str
    zones: Sequence[str]
    #: The model's name: prefixes names, labels and the service account.
    model: str
    #: The subscription the workers pull from and the topic they publish to (names, not ids).
    subscription_name: pulumi.Input[str]
    results_topic_name: pulumi.Input[str]
    #: Boot disk image (self link or family URL), normally `BakedImage.self_link`.
    source_image: pulumi.Input[str]
    #: The worker's container image (Artifact Registry reference).
    worker_image: str
    policy: ScalingPolicy = field(default_factory=ScalingPolicy)
    schedules: ScheduleScaler | None = None

    machine_type: str = "g2-standard-4"
    gpu_type: str = "nvidia-l4"
    gpu_count: int = 1
    boot_disk_gb: int = 100
    boot_disk_type: str = "pd-balanced"
    network: str = "default"
    subnetwork: str | None = None
    #: Off by default: workers only pull and publish, which Cloud NAT (below) or Private Google Access
    #: on the subnet serves.
    external_ip: bool = False
    #: A Cloud Router + Cloud NAT for the pool's region and network, so VMs without an external IP
    #: reach Pub/Sub, Artifact Registry and Cloud Logging on the first `pulumi up`. Turn it off when
    #: the network already has a NAT for the region (one NAT per subnet range; a second stack on the
    #: same network must turn it off) or the subnet has Private Google Access.
    create_nat: bool = True
    #: NVIDIA's DKMS kernel modules are unsigned, so Secure Boot would refuse to load them; turn it on
    #: only with an image whose driver is signed with an enrolled key.
    secure_boot: bool = False

    #: The worker's handler factory, "module:function" inside the container image. None: the image's
    #: own ASYNCINFER_HANDLER (a model's image names its handler, so the image alone picks the model).
    handler: str | None = None
    max_batch_size: int = 32
    max_wait_ms: int = 10
    drain_timeout_s: int = 20
    health_port: int = 8080
    health_path: str = "/healthz"
    worker_env: Mapping[str, str] = field(default_factory=dict)

    #: Measured VM-start-to-worker-ready time: the autoscaler's cooldown, the autohealer's grace and
    #: part of the reaction time that the scaling assignment leaves out of the latency goal.
    boot_to_ready_s: int = BAKED_BOOT_TO_READY_S
    cpu_utilization_target: float | None = None
    custom_metrics: Sequence[CustomMetric] = ()
    #: A fixed count (not a percent) so the last VM of a zone can always leave: scale to zero.
    scale_in_max_replicas: int = 2
    scale_in_max_percent: int | None = None
    scale_in_window_s: int = 600
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_gpu(self.gpu_type, self.machine_type, self.gpu_count)
        if not self.zones:
            raise PoolConfigError("zones is empty; give at least one zone of the region, e.g. f'{region}-a'.")
        if len(set(self.zones)) != len(self.zones):
            raise PoolConfigError(f"zones {list(self.zones)} repeat a zone; list each zone once.")
        for zone in self.zones:
            if not re.fullmatch(re.escape(self.region) + r"-[a-z]", zone):
                raise PoolConfigError(
                    f"zone {zone!r} is not in region {self.region!r}; use zones such as {self.region}-a."
                )
        if (self.cpu_utilization_target is not None or self.custom_metrics) and self.min_workers == 0:
            raise PoolConfigError(
                "CPU utilization and custom metric signals cannot scale to zero (GCE needs min >= 1 "
                "with them); set min workers to 1 or more, or drop those signals and scale on the backlog only."
            )
        if self.cpu_utilization_target is not None and not 0 < self.cpu_utilization_target <= 1:
            raise PoolConfigError("cpu_utilization_target must be in (0, 1], e.g. 0.6 for 60 %.")
        if len(self.custom_metrics) > 4:
            raise PoolConfigError("at most 4 custom metrics: GCE allows 5 metric signals and the backlog is one.")
        if not 0 < self.drain_timeout_s < STOP_TIMEOUT_S:
            raise PoolConfigError(
                f"drain_timeout_s is {self.drain_timeout_s}; it must be below {STOP_TIMEOUT_S} s so the worker "
                f"finishes draining before `docker stop` kills it "
                f"(within the ~{PREEMPTION_NOTICE_S} s preemption notice)."
            )
        if self.boot_to_ready_s < 1:
            raise PoolConfigError("boot_to_ready_s must be at least 1 second.")
        if self.policy.backlog_per_worker is None and self.reaction_s >= self.policy.target_latency_s:
            raise PoolConfigError(
                f"the latency goal ({self.policy.target_latency_s:g} s) is not longer than the pool's reaction "
                f"time ({self.reaction_s:g} s = {METRIC_PERIOD_S} s metric sampling + {METRIC_LAG_S} s metric lag "
                f"+ {self.boot_to_ready_s} s boot_to_ready_s): raise the latency goal, bake the image to shorten "
                "the boot, or give policy.backlog_per_worker (with a floor of min workers >= 1)."
            )
        if self.scale_in_max_percent is not None and not 0 < self.scale_in_max_percent <= 100:
            raise PoolConfigError("scale_in_max_percent must be between 1 and 100.")
        if self.scale_in_max_replicas < 1:
            raise PoolConfigError("scale_in_max_replicas must be at least 1, or no VM could ever leave.")
        if self.min_workers > self.policy.max_workers:
            raise PoolConfigError(
                f"off-hours minimum {self.min_workers} exceeds max workers {self.policy.max_workers}; "
                "raise max workers or lower the minimum."
            )
        if self.schedules is not None and self.schedules.business_min > self.policy.max_workers:
            raise PoolConfigError(
                f"business-hours minimum {self.schedules.business_min} exceeds max workers "
                f"{self.policy.max_workers}; raise max workers or lower the business minimum."
            )

    @property
    def min_workers(self) -> int:
        """The pool's own floor: nights and holidays. Schedules raise it during business hours."""
        base = self.schedules.base_min if self.schedules is not None else 0
        return max(self.policy.min_workers, base)

    @property
    def reaction_s(self) -> float:
        """The policy's reaction time when it gives one, else sampling + lag + this pool's boot."""
        return self.policy.reaction_s or reaction_time_s(self.boot_to_ready_s)

    @property
    def nat(self) -> bool:
        return self.create_nat and not self.external_ip

    @property
    def share(self) -> ZonalShare:
        pool_policy = ScalingPolicy(
            min_workers=self.min_workers,
            max_workers=self.policy.max_workers,
            throughput_per_worker=self.policy.throughput_per_worker,
            target_latency_s=self.policy.target_latency_s,
            scale_in_stabilization_s=self.policy.scale_in_stabilization_s,
            backlog_per_worker=self.policy.backlog_per_worker,
            reaction_s=self.reaction_s,
        )
        return zonal_share(pool_policy, len(self.zones))


def backlog_filter(subscription_name: str) -> str:
    """The autoscaler's filter for one subscription; a typo here scales on nothing (docs/PLATFORM.md)."""
    return f'resource.type = pubsub_subscription AND resource.labels.subscription_id = "{subscription_name}"'


def render_script(template: str, values: Mapping[str, str]) -> str:
    text = template
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    left = re.findall(r"@@[A-Z_]+@@", text)
    if left:
        raise PoolConfigError(f"script template still has placeholders {left}; the renderer and template disagree.")
    return text


def render_env_file(env: Mapping[str, str]) -> str:
    for key, value in env.items():
        if "\n" in value or "\n" in key:
            raise PoolConfigError(f"worker env {key!r} has a newline; docker env files are one line per variable.")
    return "\n".join(f"{k}={v}" for k, v in env.items())


def render_startup_script(worker_image: str, env: Mapping[str, str]) -> str:
    return render_script(
        boot_script("startup.sh"),
        {
            "WORKER_IMAGE": shlex.quote(worker_image),
            "WORKER_ENV": render_env_file(env),
            "STOP_TIMEOUT_S": str(STOP_TIMEOUT_S),
        },
    )


def render_shutdown_script() -> str:
    return render_script(boot_script("shutdown.sh"), {"STOP_TIMEOUT_S": str(STOP_TIMEOUT_S)})


class GpuWorkerPool(pulumi.ComponentResource):
    """Service account, Spot GPU instance template, one zonal MIG + autoscaler per zone."""

    service_account_email: pulumi.Output[str]
    instance_template_self_link: pulumi.Output[str]
    health_check_id: pulumi.Output[str]
    instance_group_manager_ids: list[pulumi.Output[str]]
    instance_group_names: list[pulumi.Output[str]]
    autoscaler_ids: list[pulumi.Output[str]]
    #: None when the network's egress is someone else's (create_nat off, or external IPs).
    nat_name: pulumi.Output[str] | None
    share: ZonalShare

    def __init__(self, name: str, args: GpuWorkerPoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("asyncinfer:index:GpuWorkerPool", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {"asyncinfer-model": args.model, "asyncinfer-role": "worker", **args.labels}
        network_tag = f"asyncinfer-{args.model}-worker"
        share = args.share

        account = gcp.serviceaccount.Account(
            f"{name}-sa",
            account_id=service_account_id(args.model),
            display_name=f"asyncinfer {args.model} GPU workers",
            project=args.project,
            opts=child,
        )
        member = account.email.apply(lambda email: f"serviceAccount:{email}")
        # Least privilege: Pub/Sub rights on this model's subscription and results topic only;
        # project-level roles only where GCE offers nothing narrower (writing logs and metrics,
        # reading the container registry).
        gcp.pubsub.SubscriptionIAMMember(
            f"{name}-subscriber",
            subscription=args.subscription_name,
            project=args.project,
            role="roles/pubsub.subscriber",
            member=member,
            opts=child,
        )
        gcp.pubsub.TopicIAMMember(
            f"{name}-results-publisher",
            topic=args.results_topic_name,
            project=args.project,
            role="roles/pubsub.publisher",
            member=member,
            opts=child,
        )
        for role in ("roles/monitoring.metricWriter", "roles/logging.logWriter", "roles/artifactregistry.reader"):
            gcp.projects.IAMMember(
                f"{name}-{role.split('/')[1].replace('.', '-').lower()}",
                project=args.project,
                role=role,
                member=member,
                opts=child,
            )

        env_values = pulumi.Output.all(args.project, args.subscription_name, args.results_topic_name)
        startup_script = env_values.apply(
            lambda v: render_startup_script(
                args.worker_image,
                {
                    **worker_environment(
                        project=v[0],
                        subscription=v[1],
                        results_topic=v[2],
                        max_batch_size=args.max_batch_size,
                        max_wait_ms=args.max_wait_ms,
                        drain_timeout_s=args.drain_timeout_s,
                        health_port=args.health_port,
                    ),
                    **(worker_environment(handler=args.handler) if args.handler else {}),
                    **args.worker_env,
                },
            )
        )

        access_configs = [gcp.compute.InstanceTemplateNetworkInterfaceAccessConfigArgs()] if args.external_ip else None
        template = gcp.compute.InstanceTemplate(
            f"{name}-template",
            # A prefix, not a name: templates are immutable, and a fixed name would force the old one
            # to be deleted (while the MIG still uses it) before the new one exists.
            name_prefix=f"{args.model[:28]}-gpu-",
            project=args.project,
            region=args.region,
            machine_type=args.machine_type,
            labels=labels,
            tags=[network_tag],
            disks=[
                gcp.compute.InstanceTemplateDiskArgs(
                    boot=True,
                    auto_delete=True,
                    source_image=args.source_image,
                    disk_size_gb=args.boot_disk_gb,
                    disk_type=args.boot_disk_type,
                )
            ],
            guest_accelerators=[
                gcp.compute.InstanceTemplateGuestAcceleratorArgs(type=args.gpu_type, count=args.gpu_count)
            ],
            scheduling=gcp.compute.InstanceTemplateSchedulingArgs(
                provisioning_model="SPOT",
                preemptible=True,
                automatic_restart=False,
                # DELETE suits a MIG: it recreates the VM when capacity returns; a STOPped VM would linger.
                instance_termination_action="DELETE",
                on_host_maintenance="TERMINATE",
            ),
            network_interfaces=[
                gcp.compute.InstanceTemplateNetworkInterfaceArgs(
                    network=args.network,
                    subnetwork=args.subnetwork,
                    access_configs=access_configs,
                )
            ],
            service_account=gcp.compute.InstanceTemplateServiceAccountArgs(
                email=account.email,
                # Access is decided by the IAM roles above; the broad scope only stops scopes from
                # second-guessing them.
                scopes=["https://www.googleapis.com/auth/cloud-platform"],
            ),
            shielded_instance_config=gcp.compute.InstanceTemplateShieldedInstanceConfigArgs(
                enable_secure_boot=args.secure_boot,
                enable_vtpm=True,
                enable_integrity_monitoring=True,
            ),
            metadata={
                "startup-script": startup_script,
                "shutdown-script": render_shutdown_script(),
                "enable-oslogin": "TRUE",
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                # Create the new template before deleting the old, so the MIG always has one to use.
                delete_before_replace=False,
                replace_on_changes=["*"],
            ),
        )

        health_check = gcp.compute.HealthCheck(
            f"{name}-health",
            project=args.project,
            check_interval_sec=10,
            timeout_sec=5,
            healthy_threshold=1,
            unhealthy_threshold=3,
            http_health_check=gcp.compute.HealthCheckHttpHealthCheckArgs(
                port=args.health_port, request_path=args.health_path
            ),
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-allow-health-checks",
            project=args.project,
            network=args.network,
            direction="INGRESS",
            source_ranges=list(HEALTH_CHECK_RANGES),
            target_tags=[network_tag],
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(args.health_port)])],
            opts=child,
        )

        nat: gcp.compute.RouterNat | None = None
        if args.nat:
            nat = self._cloud_nat(name, args)

        metric_filter = pulumi.Output.from_input(args.subscription_name).apply(backlog_filter)
        metrics = [
            gcp.compute.AutoscalerAutoscalingPolicyMetricArgs(
                name=BACKLOG_METRIC,
                filter=metric_filter,
                single_instance_assignment=share.single_instance_assignment,
            ),
            *(
                gcp.compute.AutoscalerAutoscalingPolicyMetricArgs(
                    name=m.name, target=m.target, type=m.type, filter=m.filter
                )
                for m in args.custom_metrics
            ),
        ]
        cpu = (
            gcp.compute.AutoscalerAutoscalingPolicyCpuUtilizationArgs(target=args.cpu_utilization_target)
            if args.cpu_utilization_target is not None
            else None
        )
        scaled_in = (
            gcp.compute.AutoscalerAutoscalingPolicyScaleInControlMaxScaledInReplicasArgs(
                percent=args.scale_in_max_percent
            )
            if args.scale_in_max_percent is not None
            else gcp.compute.AutoscalerAutoscalingPolicyScaleInControlMaxScaledInReplicasArgs(
                fixed=args.scale_in_max_replicas
            )
        )
        schedules = args.schedules.for_zones(len(args.zones)) if args.schedules is not None else []

        manager_ids: list[pulumi.Output[str]] = []
        group_names: list[pulumi.Output[str]] = []
        autoscaler_ids: list[pulumi.Output[str]] = []
        for zone in args.zones:
            manager = gcp.compute.InstanceGroupManager(
                f"{name}-{zone}",
                project=args.project,
                zone=zone,
                base_instance_name=f"{args.model}-w",
                versions=[
                    gcp.compute.InstanceGroupManagerVersionArgs(
                        name="primary", instance_template=template.self_link_unique
                    )
                ],
                named_ports=[gcp.compute.InstanceGroupManagerNamedPortArgs(name="health", port=args.health_port)],
                # A zonal group can only surge or drain whole VMs: bring one new VM up before an old
                # one goes, so a template roll never drops capacity below what the autoscaler asked.
                update_policy=gcp.compute.InstanceGroupManagerUpdatePolicyArgs(
                    type="PROACTIVE",
                    minimal_action="REPLACE",
                    replacement_method="SUBSTITUTE",
                    max_surge_fixed=1,
                    max_unavailable_fixed=0,
                ),
                auto_healing_policies=gcp.compute.InstanceGroupManagerAutoHealingPoliciesArgs(
                    health_check=health_check.id, initial_delay_sec=args.boot_to_ready_s
                ),
                wait_for_instances=False,
                # A VM that boots before its egress exists cannot reach Pub/Sub and is healed in a loop.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[nat] if nat is not None else None),
            )
            autoscaler = gcp.compute.Autoscaler(
                f"{name}-{zone}-autoscaler",
                project=args.project,
                zone=zone,
                target=manager.id,
                autoscaling_policy=gcp.compute.AutoscalerAutoscalingPolicyArgs(
                    min_replicas=share.min_workers,
                    max_replicas=share.max_workers,
                    cooldown_period=args.boot_to_ready_s,
                    mode="ON",
                    metrics=metrics,
                    cpu_utilization=cpu,
                    scale_in_control=gcp.compute.AutoscalerAutoscalingPolicyScaleInControlArgs(
                        max_scaled_in_replicas=scaled_in, time_window_sec=args.scale_in_window_s
                    ),
                    scaling_schedules=schedules,
                ),
                opts=child,
            )
            manager_ids.append(manager.id)
            group_names.append(manager.name)
            autoscaler_ids.append(autoscaler.id)

        self.share = share
        self.nat_name = nat.name if nat is not None else None
        self.service_account_email = account.email
        self.instance_template_self_link = template.self_link
        self.health_check_id = health_check.id
        self.instance_group_manager_ids = manager_ids
        self.instance_group_names = group_names
        self.autoscaler_ids = autoscaler_ids
        self.register_outputs(
            {
                "service_account_email": self.service_account_email,
                "instance_template_self_link": self.instance_template_self_link,
                "health_check_id": self.health_check_id,
                "instance_group_manager_ids": self.instance_group_manager_ids,
                "instance_group_names": self.instance_group_names,
                "autoscaler_ids": self.autoscaler_ids,
                "nat_name": self.nat_name,
                "zonal_min": share.min_workers,
                "zonal_max": share.max_workers,
                "zonal_single_instance_assignment": share.single_instance_assignment,
            }
        )

    def _cloud_nat(self, name: str, args: GpuWorkerPoolArgs) -> gcp.compute.RouterNat:
        """Egress for VMs without external IPs: the default network's subnets have Private Google
        Access off, so without this a worker can reach neither Pub/Sub nor Artifact Registry."""
        child = pulumi.ResourceOptions(parent=self)
        router = gcp.compute.Router(
            f"{name}-router",
            project=args.project,
            region=args.region,
            network=args.network,
            description=f"Cloud NAT for asyncinfer {args.model} GPU workers",
            opts=child,
        )
        subnetwork = nat_subnetwork(args.network, args.subnetwork)
        if subnetwork is None:
            ranges = "ALL_SUBNETWORKS_ALL_IP_RANGES"
            subnetworks = None
        else:
            # Only the pool's subnet: a NAT for every subnet of the region would stop any other NAT
            # (another team's) from serving the rest of the network.
            ranges = "LIST_OF_SUBNETWORKS"
            link = (
                pulumi.Output.from_input(subnetwork)
                if "/" in subnetwork
                else pulumi.Output.concat(
                    "projects/", args.project, "/regions/", args.region, "/subnetworks/", subnetwork
                )
            )
            subnetworks = [gcp.compute.RouterNatSubnetworkArgs(name=link, source_ip_ranges_to_nats=["ALL_IP_RANGES"])]
        return gcp.compute.RouterNat(
            f"{name}-nat",
            project=args.project,
            region=args.region,
            router=router.name,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat=ranges,
            subnetworks=subnetworks,
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            opts=child,
        )


def nat_subnetwork(network: str, subnetwork: str | None) -> str | None:
    """The subnet the pool's NAT serves: the one named, or `default` on the default network (an
    auto-mode network names its subnet in every region `default`); None means every subnet."""
    if subnetwork:
        return subnetwork
    return "default" if network == "default" else None
