"""Hourly prices of one GPU VM (GPU + the machine type it needs), Spot and on-demand.

Source and date: Google Cloud list prices for us-central1 from the public pages
https://cloud.google.com/compute/gpus-pricing, https://cloud.google.com/compute/vm-instance-pricing
and https://cloud.google.com/spot-vms/pricing, as of 2025 (H100: the Cloud Billing catalog,
2026-09-26). They were NOT fetched live (the build machines have no internet) and are rounded: Spot
prices move up to once a month and differ by region. They serve to compare designs, where the
ratio Spot/on-demand matters more than the cents; for a budget, put the current prices of your
region into a configuration's `price_per_hour`.

Boot disks, network egress, Pub/Sub and Cloud Monitoring are left out: for a GPU pool they are a few
percent of the bill, and the same for every design compared here.
"""

from __future__ import annotations

from dataclasses import dataclass

from asyncinfer.tools.simulator.assumptions import BILLING_MINIMUM_S

#: Assumed figures (asyncinfer.tools.simulator.assumptions, docs/CAPACITY.md): not measured, not live.
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


class UnknownGpuError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def price_per_hour(gpu: str, spot: bool, override: float | None = None) -> float:
    """USD per VM-hour; `override` (a configuration's price_per_hour) wins over the table."""
    if override is not None:
        return override
    try:
        return PRICE_TABLE[gpu].per_hour(spot)
    except KeyError:
        known = ", ".join(sorted(PRICE_TABLE))
        raise UnknownGpuError(
            f"gpu {gpu!r} has no price in the table ({known}); set price_per_hour in the configuration."
        ) from None


def billed_seconds(lifetime_s: float, minimum_s: float = BILLING_MINIMUM_S.value) -> float:
    """GCE bills a VM per second with a one-minute minimum."""
    return max(lifetime_s, minimum_s)
