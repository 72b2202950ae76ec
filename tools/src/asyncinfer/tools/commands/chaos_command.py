"""`asyncinfer chaos`: a load test while workers are killed, proving nothing is lost.

Brings up a local stack in its own state dir on a fresh queue, submits rendered drawings under ids
that carry a per-run nonce while SIGKILL and SIGTERM hit live workers at seeded points of progress
(answer counts; the pool controller replaces them, as a MIG replaces a preempted VM), waits for every
answer, and reports ok / error / dead-lettered / lost / unanswered, duplicate deliveries and
duplicate results, kills by signal, peak RSS per worker, the accuracy of the answers against each
drawing's true class, and how many results its own audit subscription saw. `--spike N` publishes N
requests at once instead and is about memory: flow control must keep every worker's RSS flat however
deep the backlog grows.

Exit codes: 0 every request answered correctly and the audit saw every answer; 1 something lost
(neither answered nor still queued); 2 something late (unanswered but still queued); 3 no emulator;
4 a worker's RSS passed --max-rss-mb; 5 the audit saw fewer results than the client got, or results
it could not read (it cannot vouch for the duplicate counts); 6 wrong answers: error results,
dead letters, silent duplicates, or accuracy below loadtest.MIN_ACCURACY.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from types import FrameType

from rich.console import Console

from asyncinfer.client.client import AsyncInferClient
from asyncinfer.core.logs import configure_logging
from asyncinfer.tools.chaos import (
    ChaosReport,
    ResultAudit,
    RssSampler,
    WorkerKiller,
    audit_failures,
    stack_victims,
    still_queued,
)
from asyncinfer.tools.commands.tables import measures_table
from asyncinfer.tools.loadtest import MIN_ACCURACY, new_run_id, run_load
from asyncinfer.tools.local.emulator import EmulatorError
from asyncinfer.tools.local.stack import LocalStack, LocalStackConfig

#: Longer than the longest lease a SIGKILLed worker can leave behind (a 30 s extension; 10 s for
#: messages not yet extended), after which its messages are visible again.
SWEEP_WINDOW_S = 75.0
#: Longer than a signalled worker's drain (the pool's drain bound, 25 s, and its kill 5 s after).
KILLED_EXIT_WAIT_S = 35.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=300, help="requests to submit (default 300)")
    parser.add_argument("--sigkills", type=int, default=2, help="workers to kill with SIGKILL")
    parser.add_argument("--sigterms", type=int, default=2, help="workers to stop with SIGTERM (preemption)")
    parser.add_argument("--spike", type=int, default=0, metavar="N",
                        help="publish N requests at once (overrides --count and --rate)")
    parser.add_argument("--rate", type=float, default=None,
                        help="requests/s; default spreads submission over about --kill-interval s per kill "
                             "plus 10 s (0 = flat out)")
    parser.add_argument("--kill-interval", type=float, default=3.0,
                        help="seconds of submission per planned kill, for the default --rate; the kills "
                             "themselves are due at answer counts spread over 10-70%% of the requests")
    parser.add_argument("--max-workers", type=int, default=2)
    parser.add_argument("--min-workers", type=int, default=None,
                        help="pool floor; default = --max-workers, so every kill is replaced at once")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--queue", default=None,
                        help="queue name; default chaos-<run id>, a fresh queue, so no earlier run's leftovers "
                             "are in it")
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra worker setting, e.g. ASYNCINFER_RESULT_CACHE_SIZE=0 (repeatable)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the last answer")
    parser.add_argument("--max-rss-mb", type=float, default=None, help="fail if a worker's peak RSS passes this")
    parser.add_argument("--state-dir", type=Path, default=Path(".asyncinfer/chaos"))
    parser.add_argument("--report", type=Path, default=Path(".asyncinfer/chaos-report.json"))
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    # SIGTERM (a CI timeout, `timeout`) must unwind through the finally blocks: the emulator runs in
    # its own session and would outlive this process otherwise.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    console = Console()
    count = args.spike or args.count
    kills = args.sigkills + args.sigterms
    rate = _rate(args, count, kills)
    run_id = new_run_id()
    config = LocalStackConfig(
        queue=args.queue or f"chaos-{run_id}",
        max_workers=args.max_workers,
        min_workers=args.max_workers if args.min_workers is None else args.min_workers,
        max_batch_size=args.max_batch_size,
        state_dir=args.state_dir,
        extra_worker_env=dict(item.split("=", 1) for item in args.worker_env),
    )
    console.print(
        f"[bold]asyncinfer chaos[/]: {count} requests at {'full speed' if rate == 0 else f'{rate:.0f}/s'}, "
        f"{args.sigkills} SIGKILL + {args.sigterms} SIGTERM, {args.max_workers} workers, seed {args.seed}, "
        f"run {run_id} on queue {config.queue}"
    )
    started = time.monotonic()
    try:
        stack = LocalStack(config).start()
    except EmulatorError as exc:
        console.print(f"[red]{exc}[/]")
        return 3
    assert stack.controller is not None
    controller = stack.controller
    killer = WorkerKiller(
        stack_victims(controller.workers), sigkills=args.sigkills, sigterms=args.sigterms, seed=args.seed,
        total=count,
    )
    rss = _rss_sampler(lambda: [w.pid for w in controller.workers()], console)
    try:
        status = stack.status()
        audit = ResultAudit(status["project"], status["results_topic"])
        try:
            with AsyncInferClient.from_status(status) as client:
                # Wait for the pool to serve, so the first kills land on workers that hold messages
                # and the RSS baseline is that of loaded, idle workers.
                victims, serving_wanted = stack_victims(controller.workers), max(1, config.min_workers)
                _wait_until(lambda: len(victims()) >= serving_wanted, timeout_s=120)
                if rss is not None:
                    rss.mark_baseline()
                load = run_load(
                    client, count, rate=rate, seed=args.seed, timeout_s=args.timeout,
                    show_progress=not args.quiet, peak_workers=lambda: controller.stats.peak_workers,
                    during=killer.tick, holds=killer.holds, run_id=run_id,
                )
                # A worker signalled near the end may still be draining when the last answer arrives;
                # wait for it to exit (the controller counts a replacement as it reaps one), so
                # "workers replaced" accounts for every kill, not only for those that happened to exit
                # before the load finished.
                signalled = {k.pid for k in killer.kills}
                _wait_until(lambda: all(w.pid not in signalled for w in controller.workers()),
                            timeout_s=KILLED_EXIT_WAIT_S)
                unanswered_ids = {r for r in client.submitted_at if r not in client.answers}
                still_there: set[str] = set()
                if unanswered_ids:
                    console.print(f"[yellow]{len(unanswered_ids)} unanswered; sweeping the queue for them[/]")
                    controller.stop()  # workers drain; what they hand back is what the sweep must find
                    still_there = still_queued(
                        status["project"], status["requests_subscription"], unanswered_ids, SWEEP_WINDOW_S
                    )
                time.sleep(2.0)  # late duplicates of the last answers still count
                duplicates = sum(client.duplicate_answers.values())
                # The slowest answer shows what a kill costs: a SIGKILLed worker's messages wait out
                # their lease before anyone else may take them.
                slowest_ms = max(
                    ((a.received_at - client.submitted_at[r]) * 1000 for r, a in client.results().items()),
                    default=0.0,
                )
                duplicate_ids = sum(1 for n in client.duplicate_answers.values() if n)
            seen = audit.summary(load.labels)
        finally:
            audit.close()
    finally:
        if rss is not None:
            rss.stop()
        stack.stop()
    report = ChaosReport(
        command="asyncinfer chaos " + shlex.join(sys.argv[2:]) if sys.argv[1:2] == ["chaos"] else "asyncinfer chaos",
        submitted=load.submitted,
        ok=load.ok,
        error=load.error,
        dead_lettered=load.dead_lettered,
        lost=len(unanswered_ids - still_there),
        unanswered=len(unanswered_ids),
        duplicate_results=duplicates,
        duplicate_result_ids=duplicate_ids,
        redelivered_results=seen.redelivered,
        replayed_results=seen.replayed,
        unmarked_duplicate_ids=seen.unmarked_duplicate_ids,
        kills_planned=killer.planned,
        kills=killer.counts(),
        workers_replaced=controller.stats.replaced,
        peak_workers=controller.stats.peak_workers,
        duration_s=load.duration_s,
        throughput_per_s=load.throughput_per_s,
        latency_ms={**load.latency_ms, "max": round(slowest_ms, 1)},
        peak_rss_mb=rss.peak_mb() if rss is not None else {},
        max_rss_mb=max(rss.peak_mb().values(), default=None) if rss is not None else None,
        max_rss_growth_mb=rss.max_growth_mb() if rss is not None else None,
        error_codes=load.error_codes,
        kill_log=[{"at_s": k.at_s, "at_answered": k.at_answered, "pid": k.pid, "signal": k.signal}
                  for k in killer.kills],
        queue=config.queue,
        run_id=run_id,
        accuracy=load.accuracy,
        min_accuracy=MIN_ACCURACY,
        audit={**asdict(seen), "accuracy": seen.accuracy},
    )
    blind = audit_failures(seen, load.ok + load.error, MIN_ACCURACY)
    wrong = [f for f in load.failures(MIN_ACCURACY) if "not answered" not in f]
    report.failures = [*blind, *wrong]
    _print(console, report)
    if len(killer.kills) < killer.planned:
        console.print(
            f"[yellow]only {len(killer.kills)} of {killer.planned} kills happened before the last answer; "
            "lower --rate or --kill-interval for a harsher run[/]"
        )
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report.to_json(), indent=2))
    console.print(f"report written to {args.report}; the run took {time.monotonic() - started:.1f} s")
    if report.lost:
        console.print(f"[red bold]{report.lost} requests were lost[/]")
        return 1
    if report.unanswered:
        console.print(f"[red bold]{report.unanswered} requests were not answered in time (still queued)[/]")
        return 2
    if args.max_rss_mb is not None and report.max_rss_mb is not None and report.max_rss_mb > args.max_rss_mb:
        console.print(f"[red bold]a worker's RSS reached {report.max_rss_mb} MB > {args.max_rss_mb} MB[/]")
        return 4
    for failure in report.failures:
        console.print(f"[red bold]{failure}[/]")
    if blind:
        return 5
    if wrong:
        return 6
    return 0


def _raise_interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def _rate(args: argparse.Namespace, count: int, kills: int) -> float:
    if args.spike:
        return 0.0
    if args.rate is not None:
        return float(args.rate)
    if kills == 0:
        return 0.0
    # Spread submission over the kill schedule plus a replacement's start (about 5-10 s on a busy
    # machine): a kill due after the last request was answered never happens, and a run whose
    # workers are all starting has no victim to offer.
    return count / (kills * args.kill_interval + 10.0)


def _rss_sampler(pids: Callable[[], Iterable[int]], console: Console) -> RssSampler | None:
    try:
        return RssSampler(pids).start()
    except ImportError:
        console.print("[yellow]psutil is not installed (pip install psutil): no RSS figures[/]")
        return None


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll `condition` until it holds or `timeout_s` passes (then go on: the report says what it saw)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not condition():
        time.sleep(0.2)


def _print(console: Console, report: ChaosReport) -> None:
    rows = [
        ("submitted", report.submitted),
        ("ok", report.ok),
        ("error results", report.error),
        ("dead-lettered", report.dead_lettered),
        ("lost", report.lost),
        ("unanswered", report.unanswered),
        ("duplicate results (ids)", f"{report.duplicate_results} ({report.duplicate_result_ids})"),
        ("redelivered / replayed results", f"{report.redelivered_results} / {report.replayed_results}"),
        ("silent duplicates (ids)", report.unmarked_duplicate_ids),
        ("audit: results seen (this run's ids)",
         f"{report.audit.get('results_this_run')} ({report.audit.get('ids_seen')} of {report.submitted})"),
        ("audit: unreadable results / failed pulls",
         f"{report.audit.get('unparseable')} / {report.audit.get('pull_errors')}"),
        ("accuracy, first answers / every ok result (threshold)",
         f"{_percent(report.accuracy)} / {_percent(report.audit.get('accuracy'))} ({report.min_accuracy:.0%})"),
        ("kills (planned)", f"{', '.join(f'{k} {v}' for k, v in sorted(report.kills.items())) or 'none'} "
                            f"({report.kills_planned})"),
        ("workers replaced", report.workers_replaced),
        ("peak workers", report.peak_workers),
        ("latency p50 / p95 / p99 / max (ms)",
         " / ".join(f"{report.latency_ms[k]:.0f}" for k in ("p50", "p95", "p99", "max"))),
        ("throughput (req/s)", report.throughput_per_s),
        ("peak RSS, largest worker (MB)",
         f"{report.max_rss_mb} ({len(report.peak_rss_mb)} workers)" if report.max_rss_mb is not None else "n/a"),
        ("max RSS growth under load (MB)", report.max_rss_growth_mb if report.max_rss_growth_mb is not None else "n/a"),
    ]
    console.print(measures_table("chaos run", rows))


def _percent(value: float | None) -> str:
    return f"{value:.2%}" if value is not None else "n/a"
