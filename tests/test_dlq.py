"""Dead-letter replay on the real emulator: list and show leave messages in place, a replay keeps the
request id and marks the replay, a replay that fails halfway loses nothing, and a worker's result
says that it answers a replay."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from google.api_core.retry import Retry
from google.cloud.pubsub_v1.types import PublisherOptions

from asyncinfer.client.dlq import DeadLetterQueue
from asyncinfer.client.pubsub import publisher_client, subscriber_client
from asyncinfer.core.contract import REPLAY_ATTRIBUTE, REPLAY_SOURCE_ATTRIBUTE, InferenceRequest, InferenceResult
from asyncinfer.core.topology import QueueTopology
from asyncinfer.tools import cli
from tests.conftest import PROJECT

pytestmark = pytest.mark.emulator


@pytest.fixture(autouse=True)
def short_empty_pulls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator answers a pull at once when messages wait but holds an empty one until its deadline,
    and never answers empty while messages wait: one short empty pull means done here."""
    from asyncinfer.client import dlq

    monkeypatch.setattr(dlq, "PULL_TIMEOUT_S", 0.5)
    monkeypatch.setattr(dlq, "EMPTY_PULLS_TO_STOP", 1)


def _path(kind: str, name: str) -> str:
    return f"projects/{PROJECT}/{kind}/{name}"


def dead_letter(topology: QueueTopology, requests: list[tuple[bytes, dict[str, str]]]) -> list[str]:
    """Publish requests and nack every delivery until Pub/Sub dead-letters them all (no worker runs);
    returns their message ids."""
    publisher = publisher_client()
    ids = [publisher.publish(_path("topics", topology.requests_topic), data, **attrs).result(timeout=30)
           for data, attrs in requests]
    publisher.stop()
    subscriber = subscriber_client()
    deliveries: Counter[str] = Counter()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        response = subscriber.pull(
            request={"subscription": _path("subscriptions", topology.requests_subscription), "max_messages": 100},
            timeout=0.5,
        )
        received = list(response.received_messages)
        for item in received:
            deliveries[item.message.message_id] += 1
        if received:
            subscriber.modify_ack_deadline(
                subscription=_path("subscriptions", topology.requests_subscription),
                ack_ids=[r.ack_id for r in received], ack_deadline_seconds=0,
            )
        elif all(deliveries[i] >= topology.max_delivery_attempts for i in ids):
            break
    assert all(deliveries[i] == topology.max_delivery_attempts for i in ids), deliveries
    # The emulator forwards a message to the dead-letter topic when its subscription is pulled again
    # after the last failed attempt (as a pulling worker would): pull until all have moved.
    with DeadLetterQueue(PROJECT, topology.dead_letter_subscription) as queue:
        while len(queue.peek()) < len(ids):
            assert time.monotonic() < deadline, "the dead letters never reached the hold subscription"
            response = subscriber.pull(
                request={"subscription": _path("subscriptions", topology.requests_subscription), "max_messages": 100},
                timeout=1,
            )
            assert not response.received_messages, "a message was delivered more than max_delivery_attempts times"
    subscriber.close()
    return ids


class Audit:
    """A plain subscription on a topic that records every message published after it was made."""

    def __init__(self, topic: str, name: str) -> None:
        self.subscriber = subscriber_client()
        self.path = _path("subscriptions", name)
        self.subscriber.create_subscription(name=self.path, topic=_path("topics", topic))
        self.messages: list[Any] = []

    def drain(self, quiet_s: float = 0.5) -> list[Any]:
        while True:
            response = self.subscriber.pull(request={"subscription": self.path, "max_messages": 100},
                                            timeout=quiet_s)
            received = list(response.received_messages)
            if not received:
                return self.messages
            self.messages.extend(r.message for r in received)
            self.subscriber.acknowledge(subscription=self.path, ack_ids=[r.ack_id for r in received])


def request(request_id: str, payload: bytes = b"ok") -> bytes:
    return InferenceRequest.inline(request_id, "faulty", payload).model_dump_json(exclude_none=True).encode()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def deployed(topology: QueueTopology) -> list[str]:
    return ["--project", PROJECT, "--subscription", topology.dead_letter_subscription]


def test_list_and_show_leave_dead_letters_in_place(
    topology: QueueTopology, capsys: pytest.CaptureFixture[str], tmp_path: Path, emulator_host: str
) -> None:
    dead_letter(topology, [(request(f"r-{i}"), {"client": "team-a"}) for i in range(3)])
    for _ in range(2):  # listing twice: the first list must not have consumed anything
        code, out = run_cli(capsys, "dlq", "list", "--json", *deployed(topology))
        listed = json.loads(out)
        assert code == 0 and sorted(d["request_id"] for d in listed) == ["r-0", "r-1", "r-2"]
    first = listed[0]
    assert first["delivery_attempts"] == topology.max_delivery_attempts
    assert first["source_subscription"] == topology.requests_subscription
    assert first["attributes"] == {"client": "team-a"} and first["replayed_before"] == 0

    code, out = run_cli(capsys, "dlq", "list", *deployed(topology))  # the table for people
    assert code == 0 and "3 dead letter(s)" in out and "r-2" in out

    code, out = run_cli(capsys, "dlq", "show", "r-1", *deployed(topology))
    shown = json.loads(out)
    assert code == 0 and shown["body"]["request_id"] == "r-1" and shown["request_id"] == "r-1"
    code, out = run_cli(capsys, "dlq", "show", "no-such-id", *deployed(topology))
    assert code == 1 and "no dead letter" in out

    # The local stack's way in: the names come from the state file `asyncinfer local up` writes.
    state_dir = tmp_path / "local"
    state_dir.mkdir()
    (state_dir / "stack.json").write_text(json.dumps({
        "emulator_host": emulator_host, "project": PROJECT, "controller_pid": os.getpid(),
        "dead_letter_subscription": topology.dead_letter_subscription, "workers": [],
    }))
    code, out = run_cli(capsys, "dlq", "list", "--json", "--state-dir", str(state_dir))
    assert code == 0 and len(json.loads(out)) == 3


def test_dry_run_changes_nothing(topology: QueueTopology, capsys: pytest.CaptureFixture[str]) -> None:
    dead_letter(topology, [(request("d-1"), {}), (request("d-2"), {})])
    audit = Audit(topology.requests_topic, f"{topology.name}-audit")
    code, out = run_cli(capsys, "dlq", "replay", "--all", "--dry-run", "--json", *deployed(topology))
    report = json.loads(out)
    assert code == 0 and report["dry_run"] and len(report["replayed"]) == 2
    assert set(report["replayed"].values()) == {_path("topics", topology.requests_topic)}
    assert audit.drain() == []
    with DeadLetterQueue(PROJECT, topology.dead_letter_subscription) as queue:
        assert len(queue.peek()) == 2


def test_replay_keeps_the_request_id_and_marks_the_replay(
    topology: QueueTopology, capsys: pytest.CaptureFixture[str]
) -> None:
    dead_letter(topology, [(request("k-1"), {"client": "team-b"}), (request("k-2"), {})])
    with DeadLetterQueue(PROJECT, topology.dead_letter_subscription) as queue:
        dead_ids = [d.message_id for d in queue.peek() if d.request_id == "k-1"]
    audit = Audit(topology.requests_topic, f"{topology.name}-audit")
    code, out = run_cli(capsys, "dlq", "replay", "k-1", "missing-id", "--json", *deployed(topology))
    report = json.loads(out)
    # One found and replayed, one name that matched nothing: exit 1, so a script notices.
    assert code == 1 and list(report["replayed"]) == [dead_ids[0]] and report["not_found"] == ["missing-id"]
    (message,) = audit.drain()
    assert json.loads(message.data)["request_id"] == "k-1"
    assert dict(message.attributes) == {"client": "team-b", REPLAY_ATTRIBUTE: "1", REPLAY_SOURCE_ATTRIBUTE: dead_ids[0]}
    with DeadLetterQueue(PROJECT, topology.dead_letter_subscription) as queue:
        assert [d.request_id for d in queue.peek()] == ["k-2"]


def test_a_replay_killed_halfway_loses_nothing(topology: QueueTopology) -> None:
    """The replay dies after republishing the second message and before acking its dead letter: the
    first is done, the second is both republished and still dead-lettered, the third untouched. A
    second replay finishes; the one duplicate carries its request id."""
    ids = [f"h-{i}" for i in range(3)]
    dead_letter(topology, [(request(r), {}) for r in ids])
    audit = Audit(topology.requests_topic, f"{topology.name}-audit")
    published: list[str] = []

    def crash_on_second(letter: Any) -> None:
        published.append(letter.request_id)
        if len(published) == 2:
            raise RuntimeError("replay process killed")

    with DeadLetterQueue(PROJECT, topology.dead_letter_subscription) as queue:
        with pytest.raises(RuntimeError, match="killed"):
            queue.replay(None, on_published=crash_on_second)
        left = {d.request_id for d in queue.peek()}
        assert left == set(ids) - {published[0]}, "only the acked one may leave the dead-letter queue"
        report = queue.replay(None)
        assert report.ok and len(report.replayed) == 2
        assert queue.peek() == []
    seen = Counter(json.loads(m.data)["request_id"] for m in audit.drain())
    assert set(seen) == set(ids), "nothing lost"
    assert sum(seen.values()) == 4 and seen[published[1]] == 2, "one duplicate, under its own request id"


def test_a_replay_whose_publishes_fail_keeps_the_failed_dead_letters(topology: QueueTopology) -> None:
    """Real publish failures partway through (a channel that cannot send the large messages): what
    failed stays dead-lettered, a second replay sends it, and every request arrives exactly once."""
    small = [(request(f"s-{i}"), {}) for i in range(3)]
    large = [(request(f"l-{i}", b"ok" + b" " * 20_000), {}) for i in range(2)]
    dead_letter(topology, small[:2] + large + small[2:])
    audit = Audit(topology.requests_topic, f"{topology.name}-audit")
    # The library retries a failed publish for up to a minute; a few seconds show the same thing.
    options = PublisherOptions(retry=Retry(initial=0.1, maximum=0.5, timeout=3), timeout=3)
    failing_publisher = publisher_client(max_message_bytes=10_000, publisher_options=options)
    with DeadLetterQueue(PROJECT, topology.dead_letter_subscription, publisher=failing_publisher) as failing:
        report = failing.replay(None)
        assert len(report.replayed) == 3 and len(report.failed) == 2 and not report.ok
        assert all("republishing failed" in reason for reason in report.failed.values())
    with DeadLetterQueue(PROJECT, topology.dead_letter_subscription) as queue:
        assert sorted(d.request_id or "" for d in queue.peek()) == ["l-0", "l-1"]
        assert queue.replay(None).ok and queue.peek() == []
    seen = Counter(json.loads(m.data)["request_id"] for m in audit.drain())
    assert seen == Counter({r: 1 for r in ["s-0", "s-1", "s-2", "l-0", "l-1"]})


def test_the_worker_answers_a_replay_and_says_so(
    topology: QueueTopology, start_worker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    dead_letter(topology, [(request("w-1"), {}), (request("w-2"), {})])
    results = Audit(topology.results_topic, f"{topology.name}-results-audit")
    start_worker()
    code, _ = run_cli(capsys, "dlq", "replay", "--all", *deployed(topology))
    assert code == 0
    answers: dict[str, InferenceResult] = {}
    deadline = time.monotonic() + 60
    while len(answers) < 2 and time.monotonic() < deadline:
        for message in results.drain(quiet_s=1):
            result = InferenceResult.model_validate_json(message.data)
            answers[result.request_id or ""] = result
    assert set(answers) == {"w-1", "w-2"}
    for result in answers.values():
        assert result.ok and result.output == {"value": 0} and result.dead_letter_replay == 1
