"""`python -m asyncinfer.tools.thread_cpu PID [--seconds 10] [--json FILE]`: CPU time of every thread
of a process and its children over a window, Python thread names from `py-spy dump`.

What it is for: the worker's CPU per request outside the model is spread over a handful of threads
(main, answer, puller, acker, intake readers) and intake processes; a sampling profiler shows where
each spends its time, this shows how much time each spends. It reads utime + stime of every task
in /proc before and after the window, so it costs the measured process nothing. Threads that gRPC
or torch start natively have no Python name and are listed by their OS name.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from asyncinfer.tools.proc_cpu import TICKS_PER_S, cpu_ticks, process_tree


def _task_ticks(pid: int) -> dict[int, tuple[str, int]]:
    found: dict[int, tuple[str, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        found[int(task.name)] = (name, cpu_ticks(stat))
    return found


def _python_thread_names(pid: int) -> dict[int, str]:
    # Next to this interpreter first: in a virtual environment that is not on PATH.
    beside = Path(sys.executable).with_name("py-spy")
    py_spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if py_spy is None:
        return {}
    try:
        dump = subprocess.run([py_spy, "dump", "--pid", str(pid), "--json"], capture_output=True, text=True,
                              timeout=30, check=True).stdout
        return {int(t["os_thread_id"]): str(t["thread_name"]) for t in json.loads(dump) if t.get("os_thread_id")}
    except (subprocess.SubprocessError, ValueError, KeyError):
        return {}


def measure(pid: int, seconds: float) -> dict[str, Any]:
    """CPU seconds per thread of `pid` and each of its children over `seconds`."""
    processes = process_tree(pid)
    names = {p: _python_thread_names(p) for p in processes}
    before = {p: _task_ticks(p) for p in processes}
    time.sleep(seconds)
    rows: list[dict[str, Any]] = []
    for p in processes:
        try:
            after = _task_ticks(p)
        except OSError:
            continue
        command = " ".join(psutil.Process(p).cmdline())[:80]
        for tid, (os_name, ticks) in after.items():
            used = ticks - before[p].get(tid, (os_name, 0))[1]
            if used > 0:
                rows.append({"pid": p, "process": command, "tid": tid, "thread": names[p].get(tid, os_name),
                             "cpu_s": round(used / TICKS_PER_S, 2)})
    rows.sort(key=lambda r: -float(r["cpu_s"]))
    total = sum(float(r["cpu_s"]) for r in rows)
    for row in rows:
        row["share"] = round(float(row["cpu_s"]) / total, 3) if total else 0.0
    return {"pid": pid, "seconds": seconds, "cpu_s": round(total, 2), "threads": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pid", type=int)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    report = measure(args.pid, args.seconds)
    for row in report["threads"]:
        print(f"{row['cpu_s']:7.2f} s  {row['share']:6.1%}  {row['thread']:<20} pid {row['pid']}")
    print(f"{report['cpu_s']:7.2f} s in all over {args.seconds:g} s")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
