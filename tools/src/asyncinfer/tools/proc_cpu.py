"""CPU time of processes from /proc: what the bench and the emulator cost tool charge to each side.

Read from outside the measured processes (their stat files), so measuring costs them nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes, from /proc (0 where unreadable: not Linux, gone)."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, ValueError, IndexError):
            continue
    return total


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants (a worker and its intake processes)."""
    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]
