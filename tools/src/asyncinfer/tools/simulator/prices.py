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

from asyncinfer.core.prices import PRICE_TABLE as PRICE_TABLE
from asyncinfer.core.prices import PRICES_AS_OF as PRICES_AS_OF
from asyncinfer.core.prices import VmPrice as VmPrice
from asyncinfer.tools.simulator.assumptions import BILLING_MINIMUM_S

# Assumed figures (asyncinfer.tools.simulator.assumptions, docs/CAPACITY.md): not measured, not live.
# The table itself, with its source, lives in asyncinfer.core.prices, so the stack's cost estimates
# and the simulator read the same numbers.


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
