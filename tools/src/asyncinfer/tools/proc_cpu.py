"""CPU time of processes from /proc: what the bench and the emulator cost tool charge to each side.

Read from outside the measured processes (their stat files), so measuring costs them nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil

#: Clock ticks per second, the unit of utime and stime in /proc.
TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def stat_fields(stat: str) -> list[str]:
    """The fields of a /proc/<pid>/stat (or task stat) line after the command name, which may itself
    hold spaces and parentheses: index 0 is the state, 2 the process group, 11 and 12 utime and stime."""
    return stat.rpartition(")")[2].split()


def cpu_ticks(stat: str) -> int:
    """utime + stime of a /proc stat line, in clock ticks."""
    fields = stat_fields(stat)
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes, from /proc (0 where unreadable: not Linux, gone)."""
    total = 0.0
    for pid in pids:
        try:
            total += cpu_ticks(Path(f"/proc/{pid}/stat").read_text()) / TICKS_PER_S
        except (OSError, ValueError, IndexError):
            continue
    return total


def cpu_seconds_fine(pids: list[int]) -> float:
    """`cpu_seconds` to the nanosecond, for passes too short for clock ticks (10 ms): the on-CPU
    time of every thread from /proc/<pid>/task/<tid>/schedstat, where the kernel keeps it, else
    the ticks of `cpu_seconds`."""
    total = 0.0
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
            total += sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e9
        except (OSError, ValueError, IndexError):
            total += cpu_seconds([pid])
    return total


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants (a worker and its intake processes)."""
    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]
