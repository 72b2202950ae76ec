from __future__ import annotations

from typing import Any

import pulumi

from asyncinfer.components.queue import Queue, QueueArgs
from asyncinfer.components.testing import PROJECT_NUMBER
from asyncinfer.core.topology import QueueTopology
from tests.components.conftest import PROJECT, Engine

TOPIC = "gcp:pubsub/topic:Topic"
SUBSCRIPTION = "gcp:pubsub/subscription:Subscription"
AGENT = f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"


def build(**kwargs: Any) -> Queue:
    return Queue(
        "q", QueueArgs(topology=QueueTopology(name="symbols", max_delivery_attempts=7), project=PROJECT, **kwargs)
    )


def test_graph_names_come_from_the_topology(engine: Engine) -> None:
    topo = QueueTopology(name="symbols")
    graph = engine.run(lambda: build())
    assert {r.inputs["name"] for r in graph.of_type(TOPIC)} == {
        topo.requests_topic,
        topo.dead_letter_topic,
        topo.results_topic,
    }
    assert {r.inputs["name"] for r in graph.of_type(SUBSCRIPTION)} == {
        topo.requests_subscription,
        topo.dead_letter_subscription,
    }
    queue = graph.one("asyncinfer:index:Queue")
    assert all(r.parent == queue.urn for r in graph.custom())
    assert len(graph.custom()) == 8  # 3 topics, 2 subscriptions, the service agent and its 2 grants


def test_requests_subscription_retries_and_dead_letters(engine: Engine) -> None:
    graph = engine.run(lambda: build())
    sub = graph.by_name("q-requests-workers").inputs
    dead_topic = graph.by_name("q-dead-letter")
    assert sub["deadLetterPolicy"]["deadLetterTopic"] == dead_topic.id
    assert sub["ackDeadlineSeconds"] == 60
    assert sub["retryPolicy"] == {"minimumBackoff": "10s", "maximumBackoff": "600s"}
    assert sub["deadLetterPolicy"]["maxDeliveryAttempts"] == 7
    assert sub["deadLetterPolicy"]["deadLetterTopic"] == "projects/test-project/topics/symbols-dead-letter"
    assert sub["expirationPolicy"] == {"ttl": ""}
    assert sub["enableExactlyOnceDelivery"] is False
    assert sub["messageRetentionDuration"] == "604800s"


def test_dead_letter_topic_is_subscribed_and_retained(engine: Engine) -> None:
    graph = engine.run(lambda: build())
    hold = graph.by_name("q-dead-letter-hold").inputs
    assert hold["topic"] == "projects/test-project/topics/symbols-dead-letter"
    assert hold["messageRetentionDuration"] == f"{7 * 24 * 3600}s"
    assert hold["expirationPolicy"] == {"ttl": ""}


def test_service_agent_may_dead_letter(engine: Engine) -> None:
    graph = engine.run(lambda: build())
    publisher = graph.one("gcp:pubsub/topicIAMMember:TopicIAMMember").inputs
    subscriber = graph.one("gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember").inputs
    assert (publisher["topic"], publisher["role"], publisher["member"]) == (
        "symbols-dead-letter",
        "roles/pubsub.publisher",
        AGENT,
    )
    assert (subscriber["subscription"], subscriber["role"], subscriber["member"]) == (
        "symbols-requests-workers",
        "roles/pubsub.subscriber",
        AGENT,
    )
    # The agent comes from a ServiceIdentity (Service Usage API), not a project lookup (which would
    # need the Cloud Resource Manager API).
    identity = graph.one("gcp:projects/serviceIdentity:ServiceIdentity").inputs
    assert identity["service"] == "pubsub.googleapis.com"
    assert not engine.monitor.recording.calls


def test_options_results_subscription_schema_exactly_once(engine: Engine) -> None:
    topo = QueueTopology(name="symbols", exactly_once_delivery=True)
    graph = engine.run(
        lambda: Queue(
            "q",
            QueueArgs(
                topology=topo, project=PROJECT, results_subscription=True, schema_definition='{"type": "record"}'
            ),
        )
    )
    assert graph.count(SUBSCRIPTION) == 3
    clients = graph.by_name("q-results-clients").inputs
    assert clients["topic"] == "projects/test-project/topics/symbols-results"
    # The same name the local stack creates: both come from the topology.
    assert clients["name"] == topo.results_subscription == "symbols-results-clients"
    assert graph.by_name("q-requests-workers").inputs["enableExactlyOnceDelivery"] is True
    schema = graph.one("gcp:pubsub/schema:Schema")
    assert graph.by_name("q-requests").inputs["schemaSettings"]["schema"] == schema.id
    assert graph.by_name("q-requests").inputs["schemaSettings"]["encoding"] == "JSON"


def test_outputs_name_everything(engine: Engine) -> None:
    seen: dict[str, Any] = {}

    def check() -> pulumi.Output[Any]:
        queue = build(results_subscription=True)
        names = {
            "requests_topic_name": queue.requests_topic_name,
            "requests_subscription_name": queue.requests_subscription_name,
            "dead_letter_topic_name": queue.dead_letter_topic_name,
            "dead_letter_subscription_name": queue.dead_letter_subscription_name,
            "results_topic_name": queue.results_topic_name,
            "results_subscription_name": queue.results_subscription_name,
            "requests_subscription_id": queue.requests_subscription_id,
        }
        return pulumi.Output.all(**names).apply(seen.update)

    engine.run(check)
    assert seen["requests_subscription_name"] == "symbols-requests-workers"
    assert seen["dead_letter_subscription_name"] == "symbols-dead-letter-hold"
    assert seen["results_subscription_name"] == "symbols-results-clients"
    assert seen["requests_subscription_id"] == "projects/test-project/subscriptions/symbols-requests-workers"
