"""One line per model: queue, baked image, schedules, GPU worker pool and monitoring.

From a Pulumi program:

    ModelStack("ocr", ModelStackArgs.of(image="asia-northeast1-docker.pkg.dev/p/r/ocr:1", project="p"))

The model is named after the resource ("ocr": topics `ocr-requests`, ...) unless the arguments name it
(`model="..."`), so two ModelStacks in one program never collide. Or, as this repository's own
`__main__.py` does, from the stack's configuration (`program()`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

import pulumi

from asyncinfer.components.baked_image import BakedImage, BakedImageArgs
from asyncinfer.components.monitoring import Monitoring, MonitoringArgs
from asyncinfer.components.queue import Queue, QueueArgs
from asyncinfer.components.results_export import ResultsExport, ResultsExportArgs
from asyncinfer.components.schedule_scaler import ScheduleScaler, ScheduleScalerArgs
from asyncinfer.components.stack_config import StackConfig, load_stack_config, parse_stack_config
from asyncinfer.components.storage import ClaimCheckBucket, ClaimCheckBucketArgs
from asyncinfer.components.worker_pool import GpuWorkerPool, GpuWorkerPoolArgs
from asyncinfer.core.prices import assumed_vm_price
from asyncinfer.core.worker_settings import worker_environment


@dataclass(frozen=True, kw_only=True)
class ModelStackArgs:
    config: StackConfig
    #: First month of the compiled schedules; None = today. Tests pin it.
    schedule_start: dt.date | None = None

    @classmethod
    def of(cls, *, image: str, project: str, region: str | None = None, **settings: Any) -> ModelStackArgs:
        """Validated arguments from keyword settings named like the config keys (snake or camel case).

        Without `model=`, ModelStack names the model after its own resource name, not after the
        program's stack (a program called `dev` would otherwise name every model `dev`).
        """
        values: dict[str, Any] = {"asyncinfer:image": image, "gcp:project": project}
        if region is not None:
            values["gcp:region"] = region
        for key, value in settings.items():
            values[f"asyncinfer:{_camel(key)}"] = value
        return cls(config=parse_stack_config(values, stack=None))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class ModelStack(pulumi.ComponentResource):
    queue: Queue
    image: BakedImage
    schedules: ScheduleScaler
    storage: ClaimCheckBucket
    pool: GpuWorkerPool
    monitoring: Monitoring

    def __init__(self, name: str, args: ModelStackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("asyncinfer:index:ModelStack", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config.named(name)
        model = config.model_name
        zones = config.pool_zones

        self.queue = Queue(
            f"{name}-queue",
            QueueArgs(
                topology=config.topology(),
                project=config.project,
                results_subscription=config.results_subscription,
                lanes=config.lane_set(),
            ),
            opts=child,
        )
        self.results_export: ResultsExport | None = None
        if config.results_bigquery_dataset:
            self.results_export = ResultsExport(
                f"{name}-results-export",
                ResultsExportArgs(
                    model=model,
                    project=config.project,
                    results_topic_id=self.queue.results_topic_id,
                    dataset=config.results_bigquery_dataset,
                    table=config.results_bigquery_table,
                    location=config.results_bigquery_location,
                ),
                opts=child,
            )
        image_args: dict[str, Any] = {"driver_branch": config.driver_branch} if config.driver_branch else {}
        self.image = BakedImage(
            f"{name}-image",
            BakedImageArgs(
                project=config.project,
                # Packer's build VM needs no GPU; any of the pool's zones will do.
                zone=zones[0],
                worker_image=config.image,
                model=model,
                image_cuda_version=config.image_cuda_version,
                build_service_account=config.bake_service_account,
                grant_registry_read=config.grant_registry_read,
                disk_size_gb=config.disk_size_gb,
                network=config.network,
                subnetwork=config.subnetwork,
                existing_image=config.existing_image,
                existing_family=config.existing_family,
                **image_args,
            ),
            opts=child,
        )
        self.schedules = ScheduleScaler(
            f"{name}-schedules",
            ScheduleScalerArgs(calendar=config.calendar(), start=args.schedule_start),
            opts=child,
        )
        self.storage = ClaimCheckBucket(
            f"{name}-storage",
            ClaimCheckBucketArgs(
                project=config.project,
                location=config.region,
                model=model,
                existing_bucket=config.storage_bucket,
                retention_days=config.claim_retention_days,
            ),
            opts=child,
        )
        pool_args = GpuWorkerPoolArgs(
        project=config.project,
        region=config.region,
        distribution_policy_zones=zones,
        distribution_policy_target_shape=config.distribution_policy_target_shape,
        model=model,
        subscription_name=self.queue.requests_subscription_name,
        results_topic_name=self.queue.results_topic_name,
        source_image=self.image.self_link,
        worker_image=config.image,
        worker_image_digest=self.image.worker_image_digest,
        storage_bucket=self.storage.name,
        image_cuda_version=config.image_cuda_version,
        grant_registry_read=config.grant_registry_read,
        policy=config.policy(),
        schedules=self.schedules,
        machine_type=config.machine_type,
        gpu_type=config.gpu_type,
        gpu_count=config.gpu_count,
        disk_size_gb=config.disk_size_gb,
        network=config.network,
        subnetwork=config.subnetwork,
        external_ip=config.external_ip,
        create_nat=config.create_nat,
        enable_secure_boot=config.enable_secure_boot,
        handler=config.handler,
        max_batch_size=config.max_batch_size,
        max_wait_ms=config.max_wait_ms,
        drain_timeout_s=config.drain_timeout_s,
        health_port=config.health_port,
        worker_env={**_price_env(config), **config.worker_env},
        boot_to_ready_s=config.boot_to_ready_s,
        cpu_utilization_target=config.cpu_utilization_target,
        custom_metrics=config.custom_metric_signals(),
        max_scaled_in_replicas=config.max_scaled_in_replicas,
        max_scaled_in_percent=config.max_scaled_in_percent,
    lanes=config.lane_set(),
            lane_subscription_names=self.queue.lane_subscription_names,
        )
        self.pool = GpuWorkerPool(f"{name}-pool", pool_args, opts=child)
        #: The on-demand fallback pool behind the Spot pool (asyncinfer:fallbackMaxReplicas > 0).
        self.fallback: GpuWorkerPool | None = None
        if config.fallback_max_replicas:
            self.fallback = GpuWorkerPool(
                f"{name}-fallback",
                dataclasses.replace(
                    pool_args,
                    provisioning_model="STANDARD",
                    pool_role="fallback",
                    policy=config.fallback_policy(),
                    schedules=None,
                    # The Spot pool's Cloud NAT serves the region and network.
                    create_nat=False,
                    assignment_factor=config.fallback_factor,
                    watched_lanes=config.fallback_lanes,
                    worker_env={**_fallback_price_env(config), **config.worker_env},
                ),
                opts=child,
            )
        self.monitoring = Monitoring(
            f"{name}-monitoring",
            MonitoringArgs(
                project=config.project,
                model=model,
                subscription_name=self.queue.requests_subscription_name,
                dead_letter_subscription_name=self.queue.dead_letter_subscription_name,
                instance_group_names=[self.pool.instance_group_name]
                + ([self.fallback.instance_group_name] if self.fallback is not None else []),
                latency_goal_s=config.latency_goal_s,
                boot_to_ready_s=config.boot_to_ready_s,
                notification_channels=config.notification_channels,
            ),
            opts=child,
        )
        self.register_outputs(self.outputs())

    def outputs(self) -> dict[str, Any]:
        """What a client and an operator need; `__main__` exports exactly these."""
        return {
            "requests_topic": self.queue.requests_topic_id,
            "requests_subscription": self.queue.requests_subscription_id,
            "results_topic": self.queue.results_topic_id,
            "results_subscription": self.queue.results_subscription_id,
            "dead_letter_topic": self.queue.dead_letter_topic_id,
            "dead_letter_subscription": self.queue.dead_letter_subscription_id,
            "vm_image": self.image.self_link,
            "service_account": self.pool.service_account_email,
            "instance_group": self.pool.instance_group_manager_id,
            "dashboard": self.monitoring.dashboard_id,
            "results_table": self.results_export.table_id if self.results_export else None,
            "lane_topics": self.queue.lane_topic_ids,
            "fallback_instance_group": self.fallback.instance_group_manager_id if self.fallback else None,
        }


def _price_env(config: StackConfig) -> dict[str, str]:
    """The worker settings that put a cost into every result: the configured price, else the assumed
    table price of this VM shape (the pool runs Spot VMs), else none (every cost is then 0)."""
    if config.price_per_hour_usd is not None:
        return worker_environment(price_per_hour_usd=config.price_per_hour_usd, price_basis=config.price_basis)
    assumed = assumed_vm_price(config.gpu_type, config.machine_type, config.gpu_count, spot=True)
    if assumed is None:
        return {}
    price, basis = assumed
    return worker_environment(price_per_hour_usd=price, price_basis=basis)


def _fallback_price_env(config: StackConfig) -> dict[str, str]:
    """The fallback's on-demand price for the cost in each result: configured, else the assumed table
    price of this VM shape on demand, else none."""
    if config.fallback_price_per_hour_usd is not None:
        return worker_environment(
            price_per_hour_usd=config.fallback_price_per_hour_usd, price_basis="on-demand, configured"
        )
    assumed = assumed_vm_price(config.gpu_type, config.machine_type, config.gpu_count, spot=False)
    if assumed is None:
        return {}
    price, basis = assumed
    return worker_environment(price_per_hour_usd=price, price_basis=basis)


def program(schedule_start: dt.date | None = None) -> ModelStack:
    """The whole Pulumi program: shared by `__main__.py` and `asyncinfer plan`.

    The configuration is validated first, so a bad key stops the run before any resource exists.
    """
    config = load_stack_config()
    stack = ModelStack(config.model_name, ModelStackArgs(config=config, schedule_start=schedule_start))
    for key, value in stack.outputs().items():
        pulumi.export(key, value)
    return stack
