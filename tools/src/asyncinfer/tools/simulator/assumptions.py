"""Every figure the simulator takes as input and did not measure, in one place.

Each figure is labelled by what backs it:
- `assumed`: nobody measured it for this project; the source says where the number comes from and
  `sensitivity` says how to see what changes when it moves;
- `documented`: Google Cloud documents it (the source is the page), so it is modelled as written;
- `configured`: this repository sets it (the source is the setting).

No figure here is called measured: this repository has no GCP project to measure on. The table in
docs/CAPACITY.md is printed from this module (`python -m asyncinfer.tools.simulator.assumptions`),
and a test checks that the doc still matches it. The configuration defaults in `config` and the
constants of `engine` and `prices` read their values from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from asyncinfer.core import gce

Basis = Literal["assumed", "documented", "configured"]
#: When the pages behind the documented figures and the alternatives' figures were read.
READ_ON = "2026-11-25"


@dataclass(frozen=True)
class Figure:
    key: str
    value: float
    unit: str
    basis: Basis
    what: str
    source: str
    sensitivity: str = ""
    #: When the source was read; figures without one date from READ_ON's review or are this repo's own.
    as_of: str = READ_ON


#: VM request to worker ready with the baked image.
BAKED_BOOT_S = Figure(
    "baked_boot_s", float(gce.BOOT_TO_READY_ASSUMED_S), "s", "assumed",
    "VM request to worker ready, baked image (driver and container in the image)",
    "asyncinfer.core.gce.BOOT_TO_READY_ASSUMED_S, shared with the components: what is left of VM "
    "start to worker ready once baking saved the 7 min the 2024 talk reported; not measured here",
    "`boot_s` in a configuration; the table 'Sensitivity: boot time' in docs/CAPACITY.md",
)
#: What an unbaked image adds at every scale-out.
DRIVER_INSTALL_S = Figure(
    "driver_install_s", gce.UNBAKED_EXTRA_ASSUMED_S / 2, "s", "assumed",
    "GPU driver install at boot, unbaked image",
    "half of asyncinfer.core.gce.UNBAKED_EXTRA_ASSUMED_S: the 3.5 min the system this project "
    "reproduces reported in its 2024 talk; not measured here",
    "`driver_install_s`",
)
CONTAINER_PULL_S = Figure(
    "container_pull_s", gce.UNBAKED_EXTRA_ASSUMED_S / 2, "s", "assumed",
    "worker container pull at boot, unbaked image",
    "the 3.5 min the same talk reported; not measured here",
    "`container_pull_s`",
)
PREEMPTIONS_PER_VM_HOUR = Figure(
    "preemptions_per_vm_hour", 0.05, "1/VM-h", "assumed",
    "Spot preemptions per VM-hour (exponential lifetimes)",
    "Google publishes no preemption rate for Spot VMs; 0.05/h (a mean lifetime of 20 h) is a guess",
    "traces/configs/stress.json runs 1.0/h (20x)",
)
STOCKOUT_PROBABILITY = Figure(
    "stockout_probability", 0.0, "", "assumed",
    "chance that one VM creation finds no Spot capacity (retried after stockout_retry_s)",
    "no public figure; 0 by default, independent per creation (real stockouts are correlated)",
    "traces/configs/stress.json runs 0.2 with a 300 s retry",
)
STOCKOUT_RETRY_S = Figure(
    "stockout_retry_s", 300.0, "s", "assumed",
    "how long the MIG waits before it retries a creation that hit a stockout",
    "no public figure",
    "`stockout_retry_s`",
)
BATCH_FIXED_S = Figure(
    "batch_fixed_s", 0.5, "s", "assumed",
    "fixed cost of one GPU batch (any size)",
    "an illustrative model on one L4, not a real model's timing; put yours in `batch`",
    "`batch.fixed_s`; the like-for-like baseline uses the same timing",
)
BATCH_PER_ITEM_S = Figure(
    "batch_per_item_s", 0.25, "s", "assumed",
    "cost per item of one GPU batch",
    "illustrative, as above",
    "`batch.per_item_s`",
)
MAX_BATCH = Figure(
    "max_batch", 8, "items", "assumed",
    "largest batch a worker (or a synchronous server) forms",
    "illustrative, as above",
    "`batch.max_batch`",
)
GPU_PRICES = Figure(
    "gpu_prices", 0.28, "USD/h", "assumed",
    "L4 VM (g2-standard-4) Spot price; on-demand $0.71/h; other GPUs in prices.PRICE_TABLE",
    "Google Cloud list prices for us-central1 as of 2025, rounded, not fetched live; Spot prices "
    "change up to once a month",
    "`price_per_hour`; Spot vs on-demand rows of the decomposition",
)
METRIC_PERIOD_S = Figure(
    "metric_period_s", float(gce.METRIC_PERIOD_S), "s", "documented",
    "subscription/num_undelivered_messages is sampled this often",
    "Pub/Sub metrics list, cloud.google.com/monitoring/api/metrics_gcp_p_z (docs/PLATFORM.md)",
)
METRIC_LAG_S = Figure(
    "metric_lag_s", float(gce.METRIC_LAG_S), "s", "documented",
    "how late a sample may reach the autoscaler (modelled as always this late)",
    "same page: 'After sampling, data is not visible for up to 120 seconds'",
    "traces/configs/stress.json runs 0 (spot-baked-no-lag)",
)
STABILIZATION_S = Figure(
    "stabilization_s", float(gce.SCALE_IN_STABILIZATION_S), "s", "documented",
    "scale-in waits for the highest recommendation of the last 10 minutes",
    "cloud.google.com/compute/docs/autoscaler/understanding-autoscaler-decisions",
)
SCALE_IN_MAX_VMS = Figure(
    "scale_in_max_vms", 2, "VMs", "configured",
    "scale-in control: at most this many VMs below the highest target of the trailing window",
    "the components' default (GpuWorkerPoolArgs.max_scaled_in_replicas, asyncinfer:maxScaledInReplicas); "
    "GCE's rule: 'maximum allowed number of VMs that can be deducted from the peak recommendation "
    "during the window' (AutoscalingPolicyScaleInControl, Compute API reference)",
    "`scale_in_max_vms` (null: no control)",
)
SCALE_IN_WINDOW_S = Figure(
    "scale_in_window_s", 600.0, "s", "configured",
    "the scale-in control's trailing window",
    "the components' default (GpuWorkerPoolArgs.time_window_sec)",
    "`scale_in_window_s`",
)
PREEMPTION_NOTICE_S = Figure(
    "preemption_notice_s", float(gce.SPOT_NOTICE_S), "s", "documented",
    "Spot preemption notice: the worker finishes or hands back its batch within it",
    "cloud.google.com/compute/docs/instances/spot#preemption-process",
)
BILLING_MINIMUM_S = Figure(
    "billing_minimum_s", 60.0, "s", "documented",
    "VMs are billed per second with a one-minute minimum; a Spot VM preempted in its first minute is free",
    "cloud.google.com/compute/vm-instance-pricing, cloud.google.com/spot-vms/pricing",
)
REDELIVERY_BACKOFF_S = Figure(
    "redelivery_backoff_s", 10.0, "s", "configured",
    "a nacked message is redelivered after the subscription's minimum retry backoff",
    "the Queue component's retry policy (asyncinfer.core.topology)",
)

# --- the alternatives (docs/CAPACITY.md "Against what users would pick instead") ---------------

CLOUD_RUN_GPU_START_S = Figure(
    "cloud_run_gpu_start_s", 5.0, "s", "documented",
    "Cloud Run instance with an L4 GPU, drivers pre-installed, starts in about this long",
    "cloud.google.com/run/docs/configuring/services/gpu ('start in approximately 5 seconds')",
)
CLOUD_RUN_MODEL_LOAD_S = Figure(
    "cloud_run_model_load_s", 10.0, "s", "assumed",
    "container start to model loaded on the GPU, after the instance starts",
    "estimate for a small model like drawing_symbols; large models take minutes",
    "sensitivity line 'Cloud Run start' (5 / 60 s)",
)
CLOUD_RUN_MIN_VCPU = Figure(
    "cloud_run_min_vcpu", 4, "vCPU", "documented",
    "an L4 GPU instance needs at least 4 vCPU and 16 GiB, billed with it",
    "cloud.google.com/run/docs/configuring/services/gpu ('minimum of 4 CPU and 16 GiB of memory')",
)
CLOUD_RUN_MIN_MEMORY_GIB = Figure(
    "cloud_run_min_memory_gib", 16, "GiB", "documented", "see cloud_run_min_vcpu", "same page",
)
CLOUD_RUN_VCPU_USD_PER_S = Figure(
    "cloud_run_vcpu_usd_per_s", 0.000018, "USD/vCPU-s", "documented",
    "Cloud Run vCPU price with instance-based billing (GPU services must use it), Tier 1 region",
    "cloud.google.com/run/pricing ('$0.00001800 / vCPU-second', CPU always allocated); "
    "GPU page: 'You must use instance-based billing', 'GPU is billed for the entire duration of the "
    "instance lifecycle'",
)
CLOUD_RUN_MEMORY_USD_PER_S = Figure(
    "cloud_run_memory_usd_per_gib_s", 0.000002, "USD/GiB-s", "assumed",
    "Cloud Run memory price, instance-based billing, Tier 1",
    "the list price as this repo's authors know it; the pricing page was not read for it here",
    "a 30 % error moves Cloud Run's cost by under 4 %",
)
CLOUD_RUN_L4_USD_PER_S = Figure(
    "cloud_run_l4_usd_per_s", 0.0001867, "USD/s", "assumed",
    "Cloud Run L4 GPU price without zonal redundancy ($0.67/h); on-demand only, no Spot",
    "third-party pages (2026) quote '$0.67 per hour' for a Cloud Run L4; the official table was not "
    "read here; GPU page: 'on-demand availability with no reservations'",
    "sensitivity line 'Cloud Run GPU price' (x0.7 / x1.3)",
)
CLOUD_RUN_TARGET_CONCURRENCY = Figure(
    "cloud_run_target_concurrency", 0.6, "", "documented",
    "Cloud Run adds instances to keep concurrency at 60 % of the maximum (one-minute window)",
    "cloud.google.com/run/docs/about-instance-autoscaling",
)
CLOUD_RUN_IDLE_S = Figure(
    "cloud_run_idle_s", 600.0, "s", "assumed",
    "how long an idle instance stays (and is billed) before Cloud Run removes it",
    "not stated on the autoscaling page; community reports say 10-15 min",
    "sensitivity line 'Cloud Run idle' (60 / 900 s)",
)
KEDA_POLLING_INTERVAL_S = Figure(
    "keda_polling_interval_s", 30.0, "s", "documented",
    "KEDA reads its trigger this often (ScaledObject pollingInterval default)",
    "keda.sh/docs/latest/reference/scaledobject-spec ('pollingInterval: 30 # Default: 30 seconds')",
)
KEDA_COOLDOWN_S = Figure(
    "keda_cooldown_s", 300.0, "s", "documented",
    "KEDA waits this long after the last active trigger before scaling to zero",
    "same page ('cooldownPeriod: 300 # Default: 300 seconds'); the gcp-pubsub scaler reads the same "
    "Cloud Monitoring metric as GCE's autoscaler (keda.sh/docs/2.16/scalers/gcp-pub-sub, which marks "
    "it deprecated)",
)
GKE_NODE_READY_S = Figure(
    "gke_node_ready_s", 300.0, "s", "assumed",
    "pending pod to pod ready on a new Spot L4 node: cluster autoscaler, VM boot, GKE's GPU driver "
    "install, image pull",
    "estimate; a third-party guide reports 3-8 min for GPU nodes",
    "sensitivity line 'GKE node' (180 / 480 s)",
)
GKE_SCALE_DOWN_UNNEEDED_S = Figure(
    "gke_scale_down_unneeded_s", 600.0, "s", "documented",
    "the cluster autoscaler removes a node after it has been unneeded this long",
    "Kubernetes cluster-autoscaler FAQ (--scale-down-unneeded-time default 10 min)",
)
GKE_CLUSTER_FEE_USD_PER_H = Figure(
    "gke_cluster_fee_usd_per_h", 0.10, "USD/h", "documented",
    "GKE cluster management fee per cluster; a $74.40/month credit covers one zonal cluster",
    "cloud.google.com/kubernetes-engine/pricing (also quoted by third-party guides)",
    "sensitivity line 'GKE fee' (0 with the free-tier credit)",
)
GKE_SYSTEM_NODE_USD_PER_H = Figure(
    "gke_system_node_usd_per_h", 0.067, "USD/h", "assumed",
    "an always-on e2-standard-2 for kube-system and KEDA (GPU nodes scale to zero)",
    "us-central1 list price as known to this repo, not read here",
    "+-30 % moves GKE's weekly cost by about +-4 % (it is $11.26 of ~$93)",
)
WAKER_DELAY_S = Figure(
    "waker_delay_s", 15.0, "s", "assumed",
    "push delivery to the waker plus its autoscalers.patch raising min_replicas, to the VM request",
    "estimate: push delivery is immediate and the patch is one API call, but how soon the autoscaler "
    "acts on a new minimum is not documented",
    "sensitivity line 'waker delay' (5 / 60 s)",
)
WAKER_USD_PER_MILLION = Figure(
    "waker_usd_per_million", 1.6, "USD/M messages", "assumed",
    "the waker's Cloud Run requests ($0.40/M) and ~50 ms of 1 vCPU each; Pub/Sub's per-TiB charge for "
    "the extra subscription is left out (small messages)",
    "cloud.google.com/run/pricing request price; the CPU time is an estimate",
    "$0.42 on the reference week: even 10x moves the waker design by under 9 %",
)
STANDBY_START_S = Figure(
    "standby_start_s", 45.0, "s", "assumed",
    "starting a stopped VM of the standby pool to worker ready (no creation, image on disk)",
    "no figure in the standby-pool pages; estimate",
    "sensitivity line 'standby start' (20 / 90 s)",
)
DISK_USD_PER_GB_MONTH = Figure(
    "disk_usd_per_gb_month", 0.10, "USD/GB-month", "assumed",
    "pd-balanced boot disk (100 GB per VM) that a stopped standby VM still pays for",
    "list price as known to this repo; standby pages: stopped VMs keep their disks",
    "$2.30 a week per standby VM: +-30 % moves the standby design by under 1.5 %",
)

FIGURES: tuple[Figure, ...] = (
    BAKED_BOOT_S, DRIVER_INSTALL_S, CONTAINER_PULL_S, PREEMPTIONS_PER_VM_HOUR, STOCKOUT_PROBABILITY,
    STOCKOUT_RETRY_S, BATCH_FIXED_S, BATCH_PER_ITEM_S, MAX_BATCH, GPU_PRICES, METRIC_PERIOD_S,
    METRIC_LAG_S, STABILIZATION_S, SCALE_IN_MAX_VMS, SCALE_IN_WINDOW_S, PREEMPTION_NOTICE_S,
    BILLING_MINIMUM_S, REDELIVERY_BACKOFF_S,
    CLOUD_RUN_GPU_START_S, CLOUD_RUN_MODEL_LOAD_S, CLOUD_RUN_MIN_VCPU, CLOUD_RUN_MIN_MEMORY_GIB,
    CLOUD_RUN_VCPU_USD_PER_S, CLOUD_RUN_MEMORY_USD_PER_S, CLOUD_RUN_L4_USD_PER_S, CLOUD_RUN_TARGET_CONCURRENCY,
    CLOUD_RUN_IDLE_S, KEDA_POLLING_INTERVAL_S, KEDA_COOLDOWN_S, GKE_NODE_READY_S, GKE_SCALE_DOWN_UNNEEDED_S,
    GKE_CLUSTER_FEE_USD_PER_H, GKE_SYSTEM_NODE_USD_PER_H, WAKER_DELAY_S, WAKER_USD_PER_MILLION,
    STANDBY_START_S, DISK_USD_PER_GB_MONTH,
)


def markdown_table(figures: tuple[Figure, ...] = FIGURES) -> str:
    """The table docs/CAPACITY.md carries, one row per figure."""
    lines = ["| figure | value | basis | what | source (read on) | how to vary it |", "|---|---|---|---|---|---|"]
    for f in figures:
        value = f"{f.value:g} {f.unit}".strip()
        basis = f"**{f.basis}**" if f.basis == "assumed" else f.basis
        lines.append(
            f"| `{f.key}` | {value} | {basis} | {f.what} | {f.source} ({f.as_of}) | {f.sensitivity or '-'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
