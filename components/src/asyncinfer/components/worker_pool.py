"""Spot GPU workers that pull from one subscription and scale on its backlog, down to zero.

One regional managed instance group over the chosen zones, with one regional autoscaler on the
subscription's backlog (a per-group metric with `single_instance_assignment`): one waiting message
asks for one VM, whatever the zone count. The target distribution shape (ANY by default, or
BALANCED) lets the group create a VM in whichever zone has Spot GPU capacity, so a stockout in one
zone does not cut the pool. docs/COMPONENTS.md ("Zones: one regional group") cites the GCE pages
this rests on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_gcp as gcp

from asyncinfer.components.boot_scripts import render_shutdown_script, render_startup_script
from asyncinfer.components.gpu_driver import DEFAULT_IMAGE_CUDA
from asyncinfer.components.lanes import lane_backlog_metrics, lane_subscriptions_setting
from asyncinfer.components.registry import pinned_reference, registry_reader_grant
from asyncinfer.components.schedule_scaler import ScheduleScaler
from asyncinfer.core import gce, validation
from asyncinfer.core.lanes import (
    LaneError,
    LaneSet,
    fallback_assignments,
    lane_assignments,
    shared_assignments,
    validate_for_pool,
)
from asyncinfer.core.policy import ScalingPolicy, reaction_time_s
from asyncinfer.core.worker_settings import WorkerSettings, worker_environment

#: How long `pulumi up` may wait for a template roll to finish before it fails (and may be re-run):
#: a Spot stockout in every zone stalls the roll.
ROLL_TIMEOUT = "45m"


class PoolConfigError(validation.ConfigProblem):
    """A worker pool setting that GCE would reject or that cannot work; names the setting and the fix."""


def _worker_default(name: str) -> Any:
    # The worker's own defaults, written once in WorkerSettings.
    return WorkerSettings.model_fields[name].default


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
    """A pool's arguments: the stack's config keys in snake case, GCE's own names where it has one."""

    project: pulumi.Input[str]
    region: str
    #: The regional group's zones; each must offer gpu_type.
    distribution_policy_zones: Sequence[str]
    #: The model's name: prefixes every GCE name (shortened with a hash to GCE's limits), labels and
    #: the service account.
    model: str
    #: The subscription the workers pull from and the topic they publish to (names, not ids).
    subscription_name: pulumi.Input[str]
    results_topic_name: pulumi.Input[str]
    #: Boot disk image (self link or family URL), normally `BakedImage.self_link`.
    source_image: pulumi.Input[str]
    #: The worker's container image (Artifact Registry reference).
    worker_image: str
    #: The digest the stack pinned the image to (`BakedImage.worker_image_digest`): every VM runs
    #: exactly it. None: the startup script resolves the tag to a digest at each boot.
    worker_image_digest: pulumi.Input[str] | None = None
    #: The claim-check bucket (`ClaimCheckBucket.name`): object read + object create on it, and
    #: ASYNCINFER_RESULTS_URI_PREFIX=gs://<bucket>/results.
    storage_bucket: pulumi.Input[str] | None = None
    #: CUDA major.minor of the worker image: the boot refuses a driver older than it needs.
    image_cuda_version: str = DEFAULT_IMAGE_CUDA
    #: roles/artifactregistry.reader on the image's repository (in the project the reference names).
    grant_registry_read: bool = True
    policy: ScalingPolicy = field(default_factory=ScalingPolicy)
    schedules: ScheduleScaler | None = None
    #: ANY or BALANCED: both move a scale-out to zones with capacity (see gce.TARGET_SHAPES).
    distribution_policy_target_shape: str = gce.DEFAULT_TARGET_SHAPE

    machine_type: str = "g2-standard-4"
    gpu_type: str = "nvidia-l4"
    gpu_count: int = 1
    disk_size_gb: int = 100
    disk_type: str = "pd-balanced"
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
    enable_secure_boot: bool = False

    #: The worker's handler factory, "module:function" inside the container image. None: the image's
    #: own ASYNCINFER_HANDLER (a model's image names its handler, so the image alone picks the model).
    handler: str | None = None
    #: The worker's settings, defaults from WorkerSettings (written once there).
    max_batch_size: int = _worker_default("max_batch_size")
    max_wait_ms: float = _worker_default("max_wait_ms")
    drain_timeout_s: float = _worker_default("drain_timeout_s")
    health_port: int = _worker_default("health_port")
    health_path: str = "/healthz"
    worker_env: Mapping[str, str] = field(default_factory=dict)

    #: VM start to worker ready (ASSUMED 90 s until measured): the autoscaler's cooldown, the
    #: autohealer's grace and part of the reaction time the assignment leaves out of the latency goal.
    boot_to_ready_s: int = gce.BOOT_TO_READY_ASSUMED_S
    cpu_utilization_target: float | None = None
    custom_metrics: Sequence[CustomMetric] = ()
    #: A fixed count (not a percent) so the last VM can always leave: scale to zero.
    max_scaled_in_replicas: int = 2
    max_scaled_in_percent: int | None = None
    #: scale_in_control.time_window_sec: the window max_scaled_in_* counts over.
    time_window_sec: int = 600
    labels: Mapping[str, str] = field(default_factory=dict)

    #: Priority lanes (asyncinfer.core.lanes): one backlog metric per lane, each with its lane's
    #: assignment; the workers pull every lane. `lane_subscription_names` maps every lane to its
    #: workers' subscription (the default lane's is `subscription_name`). None: one subscription.
    lanes: LaneSet | None = None
    lane_subscription_names: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    #: SPOT, or STANDARD for an on-demand pool (the fallback behind a Spot pool).
    provisioning_model: str = "SPOT"
    #: The fallback pool: its assignments are this factor times the Spot pool's (core.lanes
    #: fallback_assignments), over `watched_lanes` (None: every lane). 1: an ordinary pool.
    assignment_factor: float = 1.0
    watched_lanes: Sequence[str] | None = None
    #: Names a second pool of the same model (e.g. "fallback"): its GCE names and service account are
    #: the model's with this suffix, so the two pools never collide.
    pool_role: str = ""

    def __post_init__(self) -> None:
        zones = list(self.distribution_policy_zones)
        problems = validation.gpu_shape(self.gpu_type, self.machine_type, self.gpu_count)
        problems += validation.zones_of_region(self.region, zones)
        problems += validation.gpu_offered(self.gpu_type, self.region, zones)
        problems += validation.target_shape(self.distribution_policy_target_shape)
        problems += validation.signals_reach_zero(
            self.min_replicas, self.cpu_utilization_target, len(self.custom_metrics)
        )
        if self.cpu_utilization_target is not None and not 0 < self.cpu_utilization_target <= 1:
            problems.append("cpu_utilization_target must be in (0, 1], e.g. 0.6 for 60 %.")
        problems += validation.metric_signals([m.filter for m in self.custom_metrics])
        problems += validation.drain_before_stop(self.drain_timeout_s)
        problems += validation.scale_in_controls(self.max_scaled_in_replicas, self.max_scaled_in_percent)
        if self.boot_to_ready_s < 1:
            problems.append("boot_to_ready_s must be at least 1 second.")
        business_min = self.schedules.business_min if self.schedules is not None else None
        problems += validation.replica_bounds(self.min_replicas, self.policy.max_replicas, business_min)
        problems += validation.latency_goal_beyond_reaction(
            self.policy.latency_goal_s,
            self.reaction_s,
            self.boot_to_ready_s,
            assignment_given=self.policy.single_instance_assignment is not None,
        )
        problems += validation.gce_names(self.names.all())
        if self.assignment_factor < 1:
            problems.append(f"assignment_factor {self.assignment_factor} must be 1 or more (> 1 for a fallback pool).")
        if self.provisioning_model not in ("SPOT", "STANDARD"):
            problems.append(f"provisioning_model {self.provisioning_model!r} must be SPOT or STANDARD.")
        if self.lanes is not None:
            missing = sorted(set(self.lanes.names) - set(self.lane_subscription_names))
            if missing:
                problems.append(f"lane_subscription_names has no subscription for lane(s) {', '.join(missing)}.")
            try:
                validate_for_pool(self.lanes, self.reaction_s, other_metric_signals=len(self.custom_metrics))
                self.lane_assignments  # noqa: B018  # the factor and the watched lanes are checked here
            except (LaneError, ValueError) as exc:
                problems.append(str(exc))
        validation.require(problems, PoolConfigError)

    @property
    def names(self) -> gce.PoolNames:
        return gce.PoolNames(f"{self.model}-{self.pool_role}" if self.pool_role else self.model)

    @property
    def lane_assignments(self) -> dict[str, float]:
        """The backlog one VM owns in each watched lane (core.lanes): each lane's share of the
        policy's assignment for its goal, times assignment_factor for a fallback pool."""
        assert self.lanes is not None
        if self.policy.single_instance_assignment is not None:
            own = shared_assignments(self.lanes, self.policy.single_instance_assignment)
        else:
            own = lane_assignments(self.lanes, self.policy.throughput_per_replica, self.reaction_s)
        if self.assignment_factor == 1.0 and self.watched_lanes is None:
            return own
        return fallback_assignments(own, self.assignment_factor, self.watched_lanes)

    @property
    def min_replicas(self) -> int:
        """The pool's own floor: nights and holidays. Schedules raise it during business hours."""
        base = self.schedules.base_min if self.schedules is not None else 0
        return max(self.policy.min_replicas, base)

    @property
    def reaction_s(self) -> float:
        """The policy's reaction time when it gives one, else sampling + lag + this pool's boot."""
        return self.policy.reaction_s or reaction_time_s(self.boot_to_ready_s)

    @property
    def nat(self) -> bool:
        return self.create_nat and not self.external_ip

    @property
    def single_instance_assignment(self) -> float:
        """The backlog one VM owns; one regional autoscaler sees the whole backlog, so no zone split."""
        if self.policy.single_instance_assignment is not None:
            return self.policy.single_instance_assignment
        return ScalingPolicy(
            max_replicas=self.policy.max_replicas,
            throughput_per_replica=self.policy.throughput_per_replica,
            latency_goal_s=self.policy.latency_goal_s,
            reaction_s=self.reaction_s,
        ).assignment

    @property
    def update_policy(self) -> gcp.compute.RegionInstanceGroupManagerUpdatePolicyArgs:
        """A template roll that never drops below the autoscaler's size.

        GCE: a regional group's fixed max_surge / max_unavailable must be 0 or at least its zone
        count, and a target shape other than EVEN needs proactive redistribution off (NONE).
        """
        return gcp.compute.RegionInstanceGroupManagerUpdatePolicyArgs(
            type="PROACTIVE",
            minimal_action="REPLACE",
            replacement_method="SUBSTITUTE",
            instance_redistribution_type="NONE",
            max_surge_fixed=len(self.distribution_policy_zones),
            max_unavailable_fixed=0,
        )


def backlog_filter(subscription_name: str) -> str:
    """The autoscaler's filter for one subscription (every value double-quoted; a typo scales on nothing)."""
    return gce.backlog_filter(subscription_name)


class GpuWorkerPool(pulumi.ComponentResource):
    """Service account, Spot GPU instance template, one regional MIG and its regional autoscaler."""

    service_account_email: pulumi.Output[str]
    instance_template_self_link: pulumi.Output[str]
    health_check_id: pulumi.Output[str]
    instance_group_manager_id: pulumi.Output[str]
    instance_group_name: pulumi.Output[str]
    autoscaler_id: pulumi.Output[str]
    #: None when the network's egress is someone else's (create_nat off, or external IPs).
    nat_name: pulumi.Output[str] | None

    def __init__(self, name: str, args: GpuWorkerPoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("asyncinfer:index:GpuWorkerPool", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        names = args.names
        labels = {"asyncinfer-model": args.model, "asyncinfer-role": args.pool_role or "worker", **args.labels}
        zones = list(args.distribution_policy_zones)

        account = gcp.serviceaccount.Account(
            f"{name}-sa",
            account_id=names.service_account_id,
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
        for lane, subscription in (args.lane_subscription_names if args.lanes is not None else {}).items():
            if lane != args.lanes.default:  # type: ignore[union-attr]
                gcp.pubsub.SubscriptionIAMMember(
                    f"{name}-subscriber-{lane}",
                    subscription=subscription,
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
        for role in ("roles/monitoring.metricWriter", "roles/logging.logWriter"):
            gcp.projects.IAMMember(
                f"{name}-{role.split('/')[1].replace('.', '-').lower()}",
                project=args.project,
                role=role,
                member=member,
                opts=child,
            )

        # Registry read where the registry lives (the reference names its project), not on this one.
        if args.grant_registry_read:
            registry_reader_grant(f"{name}-registry-reader", args.worker_image, member, opts=child)
        results_prefix: pulumi.Input[str] | None = None
        if args.storage_bucket is not None:
            # Exactly what the claim check needs: read inputs, create outputs; no overwrite, no delete.
            for role in ("roles/storage.objectViewer", "roles/storage.objectCreator"):
                gcp.storage.BucketIAMMember(
                    f"{name}-bucket-{role.split('.')[-1].lower()}",
                    bucket=args.storage_bucket,
                    role=role,
                    member=member,
                    opts=child,
                )
            results_prefix = pulumi.Output.concat("gs://", args.storage_bucket, "/results")
        lane_names = list(args.lanes.names) if args.lanes is not None else []
        env_values = pulumi.Output.all(
            args.project,
            args.subscription_name,
            args.results_topic_name,
            args.worker_image_digest,
            results_prefix,
            *(args.lane_subscription_names[lane] for lane in lane_names),
        )
        startup_script = env_values.apply(
            lambda v: render_startup_script(
                pinned_reference(args.worker_image, v[3]),
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
                    **(worker_environment(results_uri_prefix=v[4]) if v[4] else {}),
                    **(
                        worker_environment(
                            lanes=lane_subscriptions_setting(args.lanes, dict(zip(lane_names, v[5:], strict=True)))
                        )
                        if args.lanes is not None
                        else {}
                    ),
                    **args.worker_env,
                },
                image_cuda=args.image_cuda_version,
            )
        )

        access_configs = [gcp.compute.InstanceTemplateNetworkInterfaceAccessConfigArgs()] if args.external_ip else None
        template = gcp.compute.InstanceTemplate(
            f"{name}-template",
            # A prefix, not a name: templates are immutable, so a change replaces the template, and a
            # fixed name would make the new one wait for the old one's deletion (while the group still
            # uses it). The group's roll, below, releases the old template before Pulumi deletes it.
            name_prefix=names.template_prefix,
            project=args.project,
            region=args.region,
            machine_type=args.machine_type,
            labels=labels,
            tags=[names.network_tag],
            disks=[
                gcp.compute.InstanceTemplateDiskArgs(
                    boot=True,
                    auto_delete=True,
                    source_image=args.source_image,
                    disk_size_gb=args.disk_size_gb,
                    disk_type=args.disk_type,
                )
            ],
            guest_accelerators=[
                gcp.compute.InstanceTemplateGuestAcceleratorArgs(type=args.gpu_type, count=args.gpu_count)
            ],
            scheduling=gcp.compute.InstanceTemplateSchedulingArgs(
                provisioning_model=args.provisioning_model,
                preemptible=args.provisioning_model == "SPOT",
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
                enable_secure_boot=args.enable_secure_boot,
                enable_vtpm=True,
                enable_integrity_monitoring=True,
            ),
            metadata={
                "startup-script": startup_script,
                "shutdown-script": render_shutdown_script(),
                "enable-oslogin": "TRUE",
                # startup.sh reports boot problems in the guest attribute asyncinfer/boot-status.
                "enable-guest-attributes": "TRUE",
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                # Create the new template before deleting the old, so the group always has one to use.
                delete_before_replace=False,
                replace_on_changes=["*"],
            ),
        )

        health_check = gcp.compute.HealthCheck(
            f"{name}-health",
            name=names.health_check,
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
            name=names.firewall,
            project=args.project,
            network=args.network,
            direction="INGRESS",
            source_ranges=list(gce.HEALTH_CHECK_RANGES),
            target_tags=[names.network_tag],
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(args.health_port)])],
            opts=child,
        )

        nat: gcp.compute.RouterNat | None = None
        if args.nat:
            nat = self._cloud_nat(name, args, names)

        manager = gcp.compute.RegionInstanceGroupManager(
            f"{name}-group",
            name=names.instance_group_manager,
            project=args.project,
            region=args.region,
            base_instance_name=names.base_instance_name,
            distribution_policy_zones=zones,
            distribution_policy_target_shape=args.distribution_policy_target_shape,
            versions=[
                gcp.compute.RegionInstanceGroupManagerVersionArgs(
                    name="primary", instance_template=template.self_link_unique
                )
            ],
            named_ports=[gcp.compute.RegionInstanceGroupManagerNamedPortArgs(name="health", port=args.health_port)],
            update_policy=args.update_policy,
            auto_healing_policies=gcp.compute.RegionInstanceGroupManagerAutoHealingPoliciesArgs(
                health_check=health_check.id, initial_delay_sec=args.boot_to_ready_s
            ),
            # The update returns only once every VM runs the new template; only then does Pulumi
            # delete the old one (create-before-delete deletes last). Without the wait the delete
            # races the roll and GCE refuses it: resourceInUseByAnotherResource (docs/COMPONENTS.md).
            wait_for_instances=True,
            wait_for_instances_status="UPDATED",
            opts=pulumi.ResourceOptions(
                parent=self,
                # A VM that boots before its egress exists cannot reach Pub/Sub and is healed in a loop.
                depends_on=[nat] if nat is not None else None,
                custom_timeouts=pulumi.CustomTimeouts(create=ROLL_TIMEOUT, update=ROLL_TIMEOUT),
            ),
        )

        metric_filter = pulumi.Output.from_input(args.subscription_name).apply(backlog_filter)
        backlog_metrics = (
            lane_backlog_metrics(args.lane_subscription_names, args.lane_assignments)
            if args.lanes is not None
            else [
                gcp.compute.RegionAutoscalerAutoscalingPolicyMetricArgs(
                    name=gce.BACKLOG_METRIC,
                    filter=metric_filter,
                    single_instance_assignment=args.single_instance_assignment * args.assignment_factor,
                )
            ]
        )
        metrics = [
            *backlog_metrics,
            *(
                gcp.compute.RegionAutoscalerAutoscalingPolicyMetricArgs(
                    name=m.name, target=m.target, type=m.type, filter=m.filter
                )
                for m in args.custom_metrics
            ),
        ]
        cpu = (
            gcp.compute.RegionAutoscalerAutoscalingPolicyCpuUtilizationArgs(target=args.cpu_utilization_target)
            if args.cpu_utilization_target is not None
            else None
        )
        scaled_in = (
            gcp.compute.RegionAutoscalerAutoscalingPolicyScaleInControlMaxScaledInReplicasArgs(
                percent=args.max_scaled_in_percent
            )
            if args.max_scaled_in_percent is not None
            else (
                gcp.compute.RegionAutoscalerAutoscalingPolicyScaleInControlMaxScaledInReplicasArgs(
                    fixed=args.max_scaled_in_replicas
                )
            )
        )
        autoscaler = gcp.compute.RegionAutoscaler(
            f"{name}-autoscaler",
            name=names.autoscaler,
            project=args.project,
            region=args.region,
            target=manager.id,
            autoscaling_policy=gcp.compute.RegionAutoscalerAutoscalingPolicyArgs(
                min_replicas=args.min_replicas,
                max_replicas=args.policy.max_replicas,
                cooldown_period=args.boot_to_ready_s,
                mode="ON",
                metrics=metrics,
                cpu_utilization=cpu,
                scale_in_control=gcp.compute.RegionAutoscalerAutoscalingPolicyScaleInControlArgs(
                    max_scaled_in_replicas=scaled_in, time_window_sec=args.time_window_sec
                ),
                scaling_schedules=args.schedules.scaling_schedules if args.schedules is not None else [],
            ),
            opts=child,
        )

        self.nat_name = nat.name if nat is not None else None
        self.service_account_email = account.email
        self.instance_template_self_link = template.self_link
        self.health_check_id = health_check.id
        self.instance_group_manager_id = manager.id
        self.instance_group_name = manager.name
        self.autoscaler_id = autoscaler.id
        self.register_outputs(
            {
                "service_account_email": self.service_account_email,
                "instance_template_self_link": self.instance_template_self_link,
                "health_check_id": self.health_check_id,
                "instance_group_manager_id": self.instance_group_manager_id,
                "instance_group_name": self.instance_group_name,
                "autoscaler_id": self.autoscaler_id,
                "nat_name": self.nat_name,
                "min_replicas": args.min_replicas,
                "max_replicas": args.policy.max_replicas,
                "single_instance_assignment": args.single_instance_assignment,
                "lane_assignments": args.lane_assignments if args.lanes is not None else {},
                "provisioning_model": args.provisioning_model,
            }
        )

    def _cloud_nat(self, name: str, args: GpuWorkerPoolArgs, names: gce.PoolNames) -> gcp.compute.RouterNat:
        """Egress for VMs without external IPs: the default network's subnets have Private Google
        Access off, so without this a worker can reach neither Pub/Sub nor Artifact Registry."""
        child = pulumi.ResourceOptions(parent=self)
        router = gcp.compute.Router(
            f"{name}-router",
            name=names.router,
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
            name=names.nat,
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
