"""Reading requests off the main interpreter: parse, validate, fetch and decode in intake processes.

Why processes: reading a request and decoding its image is CPU work that holds the GIL. In threads of
the worker's own interpreter it competes for one core with the Pub/Sub client, result building and
the model's Python, so decode cannot use a VM's other vCPUs. Each intake process has its own
interpreter; N processes decode on N cores.

What crosses the process boundary is kept to one message each way per pull response (a "chunk"):
the raw bodies go in, and back come one small outcome tuple per body plus the chunk's decoded
tensors as one contiguous array (when they share a shape), which the parent turns into tensors
without copying. Nothing else about a request (no pydantic model, no per-message object) comes back.

An intake process that dies (a decoder crash on a hostile input) fails only its chunks in flight:
their messages are handed back (nacked) and redelivered, a poison that kills the decoder every time
is dead-lettered after the subscription's attempts, and the process is replaced. If the worker dies,
its intake processes see their pipe close and exit.

`processes=0` reads in threads of this interpreter instead (the same code path, without the
process boundary): for handlers that cannot be built twice, and to compare.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing.connection
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch

from asyncinfer.core.contract import utcnow
from asyncinfer.worker.errors import InvalidInputError, TransientError
from asyncinfer.worker.handler import ModelHandler
from asyncinfer.worker.intake import Rejection, load_input, read_request
from asyncinfer.worker.loading import load_handler

log = structlog.get_logger("asyncinfer.intake")

#: Outcome kinds, the first field of each outcome tuple:
#: (READY, request_id, submitted_at epoch seconds or None, index into the chunk's tensors,
#:  the body's priority or None when it gave none: the lane worker checks it against the lane)
READY = 0
#: (REJECTED, request_id or None, error code, message): can never succeed, answer with an error
REJECTED = 1
#: (TRANSIENT, request_id or None, message): may pass (a storage hiccup), hand back for redelivery
TRANSIENT = 2
#: (FAILED, request_id or None, message): intake itself broke on this input, answer with an error
FAILED = 3

Outcome = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ReadChunk:
    """What intake made of one chunk: one outcome per body, in order, and the ready tensors."""

    outcomes: list[Outcome]
    tensors: list[torch.Tensor]


class IntakeProcessDied(RuntimeError):
    """The intake process reading this chunk exited before answering."""


def read_one(handler: ModelHandler, body: bytes, file_root: Path, max_inline_bytes: int) -> tuple[Outcome, Any]:
    """One body's outcome and, when READY, its tensor (the index is filled in by read_chunk)."""
    parsed = read_request(body)
    if isinstance(parsed, Rejection):
        return (REJECTED, parsed.request_id, parsed.code, parsed.message), None
    request = parsed
    if request.model != handler.name:
        return (REJECTED, request.request_id, "unknown_model",
                f"model {request.model!r} is not served here; this queue serves {handler.name!r}"), None
    if request.deadline is not None and request.deadline <= utcnow():
        return (REJECTED, request.request_id, "deadline_exceeded",
                f"the deadline {request.deadline.isoformat()} passed before the request was taken"), None
    try:
        payload = load_input(request, file_root=file_root, max_inline_bytes=max_inline_bytes)
        tensor = handler.decode(payload)
    except InvalidInputError as exc:
        return (REJECTED, request.request_id, exc.code, exc.message), None
    except TransientError as exc:
        return (TRANSIENT, request.request_id, str(exc)), None
    except Exception as exc:  # a decoder bug: answer it with the reason rather than lose the message
        return (FAILED, request.request_id, f"intake failed: {exc!r}"), None
    submitted = request.submitted_at.timestamp() if request.submitted_at is not None else None
    priority = request.priority if "priority" in request.model_fields_set else None
    return (READY, request.request_id, submitted, 0, priority), tensor


def read_chunk(
    handler: ModelHandler, bodies: list[bytes], file_root: Path, max_inline_bytes: int
) -> tuple[list[Outcome], list[torch.Tensor]]:
    outcomes: list[Outcome] = []
    tensors: list[torch.Tensor] = []
    for body in bodies:
        try:
            outcome, tensor = read_one(handler, body, file_root, max_inline_bytes)
        except Exception as exc:  # never let one body fail its chunk-mates
            outcome, tensor = (FAILED, None, f"intake failed: {exc!r}"), None
        if tensor is not None:
            outcome = (READY, outcome[1], outcome[2], len(tensors), outcome[4])
            tensors.append(tensor)
        outcomes.append(outcome)
    return outcomes, tensors


def _pack(tensors: list[torch.Tensor]) -> np.ndarray | list[np.ndarray]:
    """A chunk's tensors for the pipe: one contiguous array when they share shape and dtype (one
    buffer to pickle, one to unpickle), else one array each."""
    if tensors and all(t.shape == tensors[0].shape and t.dtype == tensors[0].dtype for t in tensors):
        # One torch call for the chunk instead of three (detach, cpu, numpy) per tensor.
        return torch.stack(tensors).detach().cpu().numpy()
    return [t.detach().cpu().numpy() for t in tensors]


def _unpack(packed: np.ndarray | list[np.ndarray]) -> list[torch.Tensor]:
    if isinstance(packed, np.ndarray):
        # Views into the one received buffer: no copy here; the batch's torch.stack copies once.
        return list(torch.from_numpy(packed).unbind(0))
    return [torch.from_numpy(a) for a in packed]


def _child_main(conn: multiprocessing.connection.Connection, handler_spec: str, file_root: str,
                max_inline_bytes: int) -> None:
    # The worker decides when intake stops (it drains first): a SIGTERM or Ctrl-C sent to the whole
    # process group must not kill intake under it. The pipe closing ends this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)
    try:
        handler = load_handler(handler_spec)
    except BaseException as exc:
        conn.send(("failed", repr(exc)))
        return
    conn.send(("ready", handler.name))
    root = Path(file_root)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the worker is gone
        if message is None:
            return
        chunk_id, bodies = message
        outcomes, tensors = read_chunk(handler, bodies, root, max_inline_bytes)
        conn.send((chunk_id, outcomes, _pack(tensors)))


def child_entry() -> None:
    """An intake process's entry point: `python -c "...child_entry()" FD SPEC ROOT MAX SYS_PATH NICE`.

    Started as a plain interpreter rather than through multiprocessing's spawn, which would re-run
    the parent's __main__ module (the worker, the CLI, pytest) in every intake process."""
    fd, handler_spec, file_root, max_inline_bytes, sys_path, niceness = sys.argv[1:7]
    sys.path[:] = json.loads(sys_path)  # the worker's own import path: its handler must import here
    # Below the worker's priority: when the cores are busy, the thread that feeds the model runs
    # first and decode waits a moment (it has a chunk or two of slack in the ready queue).
    os.nice(int(niceness))
    _child_main(multiprocessing.connection.Connection(int(fd)), handler_spec, file_root, int(max_inline_bytes))


OnDone = Callable[[ReadChunk | BaseException], None]


class _Child:
    def __init__(self, pool: IntakePool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.outstanding: dict[int, OnDone] = {}
        # Two locks: a send can block on a full pipe while the child waits for us to read its
        # answer, so the reader must never wait for the sender's lock.
        self.send_lock = threading.Lock()
        self.outstanding_lock = threading.Lock()
        self.process: Any = None
        self.conn: multiprocessing.connection.Connection | None = None
        self.reader: threading.Thread | None = None

    def spawn(self) -> None:
        parent_sock, child_sock = socket.socketpair()
        pool = self.pool
        command = [
            sys.executable, "-c", "from asyncinfer.worker.intake_pool import child_entry; child_entry()",
            str(child_sock.fileno()), pool.handler_spec, str(pool.file_root), str(pool.max_inline_bytes),
            json.dumps(sys.path), str(pool.niceness),
        ]
        # stdout/stderr inherited: a handler's import-time output lands in the worker's log.
        self.process = subprocess.Popen(command, pass_fds=(child_sock.fileno(),), stdin=subprocess.DEVNULL)
        child_sock.close()  # only the child holds its end: its exit closes the pipe here
        self.conn = multiprocessing.connection.Connection(parent_sock.detach())

    def wait_ready(self, timeout_s: float) -> None:
        assert self.conn is not None
        if not self.conn.poll(timeout_s):
            raise RuntimeError(f"intake process {self.index} did not start within {timeout_s:g} s")
        try:
            kind, detail = self.conn.recv()
        except EOFError:
            raise RuntimeError(f"intake process {self.index} exited while starting") from None
        if kind != "ready":
            raise RuntimeError(f"intake process {self.index} could not build the handler: {detail}")
        self.reader = threading.Thread(target=self._read_loop, name=f"intake-reader-{self.index}", daemon=True)
        self.reader.start()

    def send(self, chunk_id: int, bodies: list[bytes], on_done: OnDone) -> None:
        with self.outstanding_lock:
            self.outstanding[chunk_id] = on_done
        with self.send_lock:
            assert self.conn is not None
            try:
                self.conn.send((chunk_id, bodies))
            except (OSError, ValueError) as exc:  # the child is gone; its reader fails the chunk
                log.warning("intake process unreachable", index=self.index, error=repr(exc))

    def _read_loop(self) -> None:
        conn = self.conn
        assert conn is not None
        while True:
            try:
                chunk_id, outcomes, packed = conn.recv()
            except (EOFError, OSError):
                break
            with self.outstanding_lock:
                on_done = self.outstanding.pop(chunk_id)
            self.pool.deliver(on_done, ReadChunk(outcomes, _unpack(packed)))
        with self.outstanding_lock:
            lost, self.outstanding = self.outstanding, {}
        for on_done in lost.values():
            self.pool.deliver(on_done, IntakeProcessDied(f"intake process {self.index} exited"))
        if not self.pool.closing:
            log.error("intake process exited; starting a new one", index=self.index,
                      exitcode=self.process.poll() if self.process is not None else None)
            self.pool.replace(self)

    def stop(self, timeout_s: float) -> None:
        if self.conn is not None:
            with self.send_lock:
                try:
                    self.conn.send(None)
                except (OSError, ValueError):
                    pass
        if self.process is not None:
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5.0)
        if self.conn is not None:
            self.conn.close()


class IntakePool:
    """Reads chunks of request bodies in `processes` intake processes (or `threads` threads of this
    interpreter when processes is 0) and calls back with each chunk's ReadChunk."""

    def __init__(
        self,
        handler_spec: str,
        *,
        processes: int,
        threads: int = 2,
        file_root: Path,
        max_inline_bytes: int,
        handler: ModelHandler | None = None,
        niceness: int = 0,
    ) -> None:
        self.handler_spec = handler_spec
        #: How much lower the intake processes' CPU priority is than this process's (Unix nice).
        self.niceness = niceness
        self.processes = processes
        self.file_root = file_root
        self.max_inline_bytes = max_inline_bytes
        self.closing = False
        self._handler = handler
        self._threads = max(1, threads)
        self._executor: ThreadPoolExecutor | None = None
        self._children: list[_Child] = []
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)

    def start(self, timeout_s: float = 120.0) -> None:
        self.launch()
        self.wait_ready(timeout_s)

    def launch(self) -> None:
        """Start the intake processes without waiting for them: the worker loads its model meanwhile."""
        if self.processes == 0 or self._children:
            return
        self._children = [_Child(self, i) for i in range(self.processes)]
        for child in self._children:
            child.spawn()  # all start at once: each imports the handler's module (torch) in parallel

    def serve_while_starting(self, timeout_s: float = 120.0) -> None:
        """Take chunks at once: they are read in threads of this interpreter until an intake process is
        ready, then in the processes. Each process imports the handler's module (torch) and builds the
        handler, which takes seconds on a busy machine; the worker need not wait for that to answer.
        A process that cannot start is logged and intake stays in threads."""
        if self.processes == 0:
            self.wait_ready(timeout_s)
            log.info("intake ready", processes=0)
            return
        self.launch()
        if self._handler is None:
            self._handler = load_handler(self.handler_spec)
        self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="intake")
        threading.Thread(target=self._await_children, args=(timeout_s,), name="intake-start", daemon=True).start()

    def _await_children(self, timeout_s: float) -> None:
        for child in self._children:
            try:
                child.wait_ready(timeout_s)
                log.info("intake process ready", index=child.index)
            except Exception:
                log.exception("intake process could not start; reading in threads instead", index=child.index)
        # What the benchmark waits for before it measures: intake no longer changes under it.
        log.info("intake ready", processes=sum(c.reader is not None for c in self._children))

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Wait until every intake process has built its handler (raises with its error if one could not)."""
        if self.processes == 0:
            if self._handler is None:
                self._handler = load_handler(self.handler_spec)
            self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="intake")
            return
        self.launch()
        for child in self._children:
            if child.reader is None:
                child.wait_ready(timeout_s)

    @property
    def pids(self) -> list[int]:
        """The running intake processes' pids (for CPU accounting)."""
        return [c.process.pid for c in self._children if c.process is not None and c.process.poll() is None]

    @property
    def in_flight(self) -> int:
        """Chunks submitted and not yet called back."""
        return self._in_flight

    def submit(self, bodies: list[bytes], on_done: OnDone) -> None:
        """Read `bodies`; `on_done` gets the ReadChunk, or the exception if the chunk was lost (then
        none of its bodies was read and all must be handed back). Called on an intake thread."""
        with self._lock:
            self._in_flight += 1
        ready = [c for c in self._children if c.reader is not None]
        if ready:
            # The least busy process; ties go to the lowest index, which keeps an idle worker's single
            # requests on one warm process.
            min(ready, key=lambda c: len(c.outstanding)).send(next(self._ids), bodies, on_done)
            return
        if self._executor is not None:
            handler = self._handler
            assert handler is not None

            def read() -> None:
                try:
                    outcomes, tensors = read_chunk(handler, bodies, self.file_root, self.max_inline_bytes)
                    result: ReadChunk | BaseException = ReadChunk(outcomes, tensors)
                except BaseException as exc:
                    result = exc
                self.deliver(on_done, result)

            self._executor.submit(read)
            return
        # Processes started but none ready yet, and no threads to read in (`start` was not called):
        # queue on the first one, which reads it once it is up.
        self._children[0].send(next(self._ids), bodies, on_done)

    def deliver(self, on_done: OnDone, result: ReadChunk | BaseException) -> None:
        try:
            on_done(result)
        except Exception:
            log.exception("handling an intake chunk failed")
        finally:
            with self._idle:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every submitted chunk was called back."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout_s)

    def replace(self, child: _Child) -> None:
        try:
            child.spawn()
            child.wait_ready(120.0)
        except Exception:
            log.exception("could not replace an intake process", index=child.index)

    def read_all(self, chunks: list[list[bytes]], timeout_s: float = 300.0) -> list[ReadChunk]:
        """Read every chunk and wait for all (the benchmark's use)."""
        results: list[ReadChunk | BaseException | None] = [None] * len(chunks)

        def keep(i: int) -> OnDone:
            def done(result: ReadChunk | BaseException) -> None:
                results[i] = result
            return done

        for i, bodies in enumerate(chunks):
            self.submit(bodies, keep(i))
        if not self.wait_idle(timeout_s):
            raise TimeoutError(f"intake did not read {len(chunks)} chunks within {timeout_s:g} s")
        for result in results:
            if not isinstance(result, ReadChunk):
                raise RuntimeError(f"an intake chunk failed: {result!r}")
        return [r for r in results if isinstance(r, ReadChunk)]

    def close(self, timeout_s: float = 5.0) -> None:
        self.closing = True
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        for child in self._children:
            child.stop(timeout_s)
