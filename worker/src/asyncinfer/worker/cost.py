"""What inference costs: each request's share of its batch, and each worker's idle time apart.

A request's cost is its share of its batch's model call (inference time / batch size) times the VM's
price per second. Time the worker spends waiting for work is paid for too but belongs to no request:
it is reported per worker as idle seconds and idle dollars in the periodic `usage` log line (and in
`worker stopped`), so a pool's idle cost is the sum over its workers' lines. The price is a setting
(ASYNCINFER_PRICE_PER_HOUR_USD, with ASYNCINFER_PRICE_BASIS saying where it came from); 0 means none
was given, and every cost is then 0 with that basis.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog

from asyncinfer.core.contract import Cost

log = structlog.get_logger("asyncinfer.worker")

MS_PER_HOUR = 3_600_000


class CostMeter:
    def __init__(self, price_per_hour_usd: float, price_basis: str, log_every_s: float) -> None:
        self.price_per_hour_usd = price_per_hour_usd
        self.price_basis = price_basis if price_per_hour_usd > 0 else f"{price_basis} (no price given: 0)"
        self.log_every_s = log_every_s
        self._started = time.monotonic()
        self._busy_ms = 0.0
        self._batches = 0
        self._lock = threading.Lock()

    def start(self, stop: threading.Event) -> None:
        """Idle time counts from here (the model is loaded, the worker takes messages); the `usage`
        line is logged every log_every_s on a thread of its own (the main thread blocks while idle)
        until `stop` is set."""
        with self._lock:
            self._started = time.monotonic()
            self._busy_ms = 0.0
            self._batches = 0
        if self.log_every_s > 0:
            threading.Thread(target=self._log_loop, args=(stop,), name="usage", daemon=True).start()

    def _log_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.log_every_s):
            log.info("usage", **self.snapshot())

    def add_batch(self, inference_ms: float) -> None:
        with self._lock:
            self._busy_ms += inference_ms
            self._batches += 1

    def share(self, inference_ms: float, batch_size: int) -> Cost:
        share_ms = inference_ms / max(1, batch_size)
        return Cost(
            usd=round(share_ms * self.price_per_hour_usd / MS_PER_HOUR, 12),
            inference_share_ms=round(share_ms, 3),
            price_per_hour_usd=self.price_per_hour_usd,
            price_basis=self.price_basis,
        )

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            up_ms = (time.monotonic() - self._started) * 1000
            busy_ms = min(self._busy_ms, up_ms)
            batches = self._batches
        idle_ms = up_ms - busy_ms
        return {
            "up_s": round(up_ms / 1000, 3),
            "inference_s": round(busy_ms / 1000, 3),
            "idle_s": round(idle_ms / 1000, 3),
            "idle_share": round(idle_ms / up_ms, 4) if up_ms > 0 else 0.0,
            "batches": batches,
            "inference_cost_usd": round(busy_ms * self.price_per_hour_usd / MS_PER_HOUR, 9),
            "idle_cost_usd": round(idle_ms * self.price_per_hour_usd / MS_PER_HOUR, 9),
            "price_per_hour_usd": self.price_per_hour_usd,
            "price_basis": self.price_basis,
        }
