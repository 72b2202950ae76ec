"""Hourly prices of one GPU VM (GPU + the machine type it needs), Spot and on-demand: ASSUMED figures.

Source and date: Google Cloud list prices for us-central1 from the public pages
https://cloud.google.com/compute/gpus-pricing, https://cloud.google.com/compute/vm-instance-pricing
and https://cloud.google.com/spot-vms/pricing, as of 2025 (H100: the Cloud Billing catalog,
2026-09-26). They were NOT fetched live (the build machines have no internet) and are rounded: Spot
prices move up to once a month and differ by region. The simulator compares designs with them; a
stack without a configured price (asyncinfer:pricePerHourUsd) puts them into its results' cost
estimates, labelled as assumed. For a budget, configure the current prices of your region.

Boot disks, network egress, Pub/Sub and Cloud Monitoring are left out: for a GPU pool they are a few
percent of the bill.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_AS_OF = "2025 list prices, us-central1 (H100: 2026-09-26); approximate, not fetched live"


@dataclass(frozen=True)
class VmPrice:
    machine_type: str
    on_demand_usd_per_hour: float
    spot_usd_per_hour: float

    def per_hour(self, spot: bool) -> float:
        return self.spot_usd_per_hour if spot else self.on_demand_usd_per_hour


#: GPU type (the accelerator name GCE uses) -> the smallest machine that carries one of them.
PRICE_TABLE: dict[str, VmPrice] = {
    "nvidia-tesla-t4": VmPrice("n1-standard-4 + 1x T4", on_demand_usd_per_hour=0.54, spot_usd_per_hour=0.18),
    "nvidia-l4": VmPrice("g2-standard-4 (1x L4)", on_demand_usd_per_hour=0.71, spot_usd_per_hour=0.28),
    "nvidia-tesla-v100": VmPrice("n1-standard-8 + 1x V100", on_demand_usd_per_hour=2.86, spot_usd_per_hour=0.99),
    "nvidia-tesla-a100": VmPrice("a2-highgpu-1g (1x A100 40GB)", on_demand_usd_per_hour=3.67, spot_usd_per_hour=1.47),
    "nvidia-h100-80gb": VmPrice("a3-highgpu-1g (1x H100 80GB)", on_demand_usd_per_hour=10.98, spot_usd_per_hour=6.57),
}


def assumed_vm_price(gpu_type: str, machine_type: str, gpu_count: int, spot: bool) -> tuple[float, str] | None:
    """The table's price for exactly this VM shape, with a basis that says it is assumed; None when the
    table has no row for it (another machine type or more GPUs: a price would be a guess)."""
    row = PRICE_TABLE.get(gpu_type)
    if row is None or gpu_count != 1 or not row.machine_type.startswith(f"{machine_type} "):
        return None
    kind = "spot" if spot else "on-demand"
    return row.per_hour(spot), f"{kind} {row.machine_type}, ASSUMED: {PRICES_AS_OF}"
