"""The worker's raw-channel RPCs: errors come out as api_core exceptions, publish retries what may pass."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from asyncinfer.client.pubsub import publisher_client, subscriber_client
from asyncinfer.core.topology import QueueTopology
from asyncinfer.worker.rpc import PUBLISH_BACKOFF_S, PublisherRpc, SubscriberRpc
from tests.conftest import PROJECT


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens there


def test_publish_to_an_unreachable_broker_is_retried_then_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{_closed_port()}")
    rpc = PublisherRpc(publisher_client(), f"projects/{PROJECT}/topics/nowhere")
    started = time.monotonic()
    with pytest.raises(gexc.ServiceUnavailable):
        rpc.publish([(b"{}", {"status": "ok"})], timeout_s=5)
    assert time.monotonic() - started >= sum(PUBLISH_BACKOFF_S) * 0.9  # it waited between attempts


def test_pull_ack_and_publish_against_the_emulator(emulator_host: str, topology: QueueTopology) -> None:
    subscriber = subscriber_client()
    rpc = SubscriberRpc(subscriber, f"projects/{PROJECT}/subscriptions/{topology.requests_subscription}")
    publisher = PublisherRpc(publisher_client(), f"projects/{PROJECT}/topics/{topology.requests_topic}")
    ids = publisher.publish([(b"one", {"k": "1"}), (b"two", {"k": "2"})])
    assert len(ids) == 2
    got: list[Any] = []
    deadline = time.monotonic() + 20
    while len(got) < 2 and time.monotonic() < deadline:
        got += rpc.pull(10, timeout_s=5)
    assert sorted(m.message.data for m in got) == [b"one", b"two"]
    assert {m.message.attributes["k"] for m in got} == {"1", "2"}
    rpc.acknowledge([m.ack_id for m in got])
    with pytest.raises(gexc.NotFound):
        SubscriberRpc(subscriber, f"projects/{PROJECT}/subscriptions/no-such-subscription").pull(1, timeout_s=5)


def test_a_publish_over_pubsubs_per_call_limit_is_split(emulator_host: str, topology: QueueTopology) -> None:
    """1,500 results in one publish: Pub/Sub takes at most 1,000 messages per call."""
    publisher = PublisherRpc(publisher_client(), f"projects/{PROJECT}/topics/{topology.requests_topic}")
    ids = publisher.publish([(f"m-{i}".encode(), {"i": str(i)}) for i in range(1500)])
    assert len(ids) == 1500 and len(set(ids)) == 1500


def test_every_call_carries_the_routing_header(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the generated client does: Pub/Sub's gRPC front end may route on it."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    from google.protobuf import empty_pb2

    from asyncinfer.worker import rpc as rpc_module

    seen: dict[str, str] = {}

    def recorder(name: str, response: Any) -> Any:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            seen[name] = dict(context.invocation_metadata()).get("x-goog-request-params", "")
            return response
        return handle

    def unary(name: str, request_type: Any, response: Any) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            recorder(name, response), request_deserializer=request_type.FromString,
            response_serializer=type(response).SerializeToString,
        )

    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("google.pubsub.v1.Subscriber", {
            "Pull": unary("pull", rpc_module.PULL_REQUEST, rpc_module.PULL_RESPONSE()),
            "Acknowledge": unary("ack", rpc_module.ACK_REQUEST, empty_pb2.Empty()),
            "ModifyAckDeadline": unary("modify", rpc_module.MODIFY_REQUEST, empty_pb2.Empty()),
        }),
        grpc.method_handlers_generic_handler("google.pubsub.v1.Publisher", {
            "Publish": unary("publish", rpc_module.PUBLISH_REQUEST, rpc_module.PUBLISH_RESPONSE(message_ids=["1"])),
        }),
    ))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{port}")
        subscription, topic = f"projects/{PROJECT}/subscriptions/s-1", f"projects/{PROJECT}/topics/t-1"
        subscriber = SubscriberRpc(subscriber_client(), subscription)
        assert subscriber.pull(5, timeout_s=5) == []
        subscriber.acknowledge(["a"])
        subscriber.modify_ack_deadline(["a"], 0)
        assert PublisherRpc(publisher_client(), topic).publish([(b"x", {})]) == ["1"]
    finally:
        server.stop(grace=None)
    assert seen == {
        "pull": f"subscription={subscription}", "ack": f"subscription={subscription}",
        "modify": f"subscription={subscription}", "publish": f"topic={topic}",
    }
