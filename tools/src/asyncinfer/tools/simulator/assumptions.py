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


@dataclass(frozen=True)
class Figure:
    key: str
    value: float
    unit: str
    basis: Basis
    what: str
    source: str
    sensitivity: str = ""


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

FIGURES: tuple[Figure, ...] = (
    BAKED_BOOT_S, DRIVER_INSTALL_S, CONTAINER_PULL_S, PREEMPTIONS_PER_VM_HOUR, STOCKOUT_PROBABILITY,
    STOCKOUT_RETRY_S, BATCH_FIXED_S, BATCH_PER_ITEM_S, MAX_BATCH, GPU_PRICES, METRIC_PERIOD_S,
    METRIC_LAG_S, STABILIZATION_S, SCALE_IN_MAX_VMS, SCALE_IN_WINDOW_S, PREEMPTION_NOTICE_S,
    BILLING_MINIMUM_S, REDELIVERY_BACKOFF_S,
)


def markdown_table(figures: tuple[Figure, ...] = FIGURES) -> str:
    """The table docs/CAPACITY.md carries, one row per figure."""
    lines = ["| figure | value | basis | what | source | how to vary it |", "|---|---|---|---|---|---|"]
    for f in figures:
        value = f"{f.value:g} {f.unit}".strip()
        basis = f"**{f.basis}**" if f.basis == "assumed" else f.basis
        lines.append(f"| `{f.key}` | {value} | {basis} | {f.what} | {f.source} | {f.sensitivity or '-'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
