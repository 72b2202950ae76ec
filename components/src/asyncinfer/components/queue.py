"""The Pub/Sub side of one model: requests, the workers' subscription, dead letters and results.

Every name and delivery setting comes from `asyncinfer.core.topology.QueueTopology`, which the local
emulator stack also creates, so a worker sees the same queue in the cloud and on a laptop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_gcp as gcp

from asyncinfer.components.lanes import LaneQueues, worker_subscription
from asyncinfer.core.lanes import LaneSet
from asyncinfer.core.topology import QueueTopology

#: Keep what failed long enough for someone to look at it after a holiday weekend.
DEAD_LETTER_RETENTION_S = 7 * 24 * 3600
#: The empty TTL is Pub/Sub's spelling of "never expire": a quiet month must not delete a queue.
NEVER_EXPIRE = ""


def duration(seconds: int) -> str:
    """Pub/Sub's duration strings ("600s")."""
    return f"{int(seconds)}s"


@dataclass(frozen=True, kw_only=True)
class QueueArgs:
    """What the queue of one model needs. `topology` is the single source of names and settings."""

    topology: QueueTopology
    #: None: the provider's default project.
    project: pulumi.Input[str] | None = None
    #: A subscription on the results topic for clients that just want to pull answers.
    results_subscription: bool = False
    #: An optional schema for request messages (Avro or protobuf definition text).
    schema_definition: str | None = None
    schema_type: Literal["AVRO", "PROTOCOL_BUFFER"] = "AVRO"
    schema_encoding: Literal["JSON", "BINARY"] = "JSON"
    dead_letter_retention_s: int = DEAD_LETTER_RETENTION_S
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Priority lanes: every lane besides the default one gets its own requests topic and workers'
    #: subscription (the same delivery settings, the shared dead-letter topic); the default lane keeps
    #: the queue's own. None: one requests topic, as before lanes.
    lanes: LaneSet | None = None

    def __post_init__(self) -> None:
        if not 600 <= self.dead_letter_retention_s <= 31 * 24 * 3600:
            raise ValueError("dead_letter_retention_s must be between 10 minutes and 31 days (Pub/Sub's limits).")
        if self.schema_definition is not None and not self.schema_definition.strip():
            raise ValueError("schema_definition is empty; leave it out or give an Avro/protobuf definition.")

    @classmethod
    def for_model(cls, name: str, **kwargs: object) -> QueueArgs:
        """QueueArgs with the topology's defaults for a model called `name`."""
        return cls(topology=QueueTopology(name=name), **kwargs)  # type: ignore[arg-type]


class Queue(pulumi.ComponentResource):
    """Requests topic, workers' pull subscription with retries and dead-lettering, results topic."""

    requests_topic_id: pulumi.Output[str]
    requests_topic_name: pulumi.Output[str]
    requests_subscription_id: pulumi.Output[str]
    requests_subscription_name: pulumi.Output[str]
    dead_letter_topic_id: pulumi.Output[str]
    dead_letter_topic_name: pulumi.Output[str]
    dead_letter_subscription_id: pulumi.Output[str]
    dead_letter_subscription_name: pulumi.Output[str]
    results_topic_id: pulumi.Output[str]
    results_topic_name: pulumi.Output[str]
    results_subscription_id: pulumi.Output[str] | None
    results_subscription_name: pulumi.Output[str] | None
    schema_id: pulumi.Output[str] | None
    #: Lane name -> its workers' subscription name (the default lane's is requests_subscription_name).
    lane_subscription_names: dict[str, pulumi.Output[str]]
    #: Lane name -> its requests topic id.
    lane_topic_ids: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: QueueArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("asyncinfer:index:Queue", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        topo = args.topology
        labels = {"asyncinfer-queue": topo.name, **args.labels}

        schema: gcp.pubsub.Schema | None = None
        schema_settings: gcp.pubsub.TopicSchemaSettingsArgs | None = None
        if args.schema_definition is not None:
            schema = gcp.pubsub.Schema(
                f"{name}-request-schema",
                name=f"{topo.name}-request",
                type=args.schema_type,
                definition=args.schema_definition,
                project=args.project,
                opts=child,
            )
            schema_settings = gcp.pubsub.TopicSchemaSettingsArgs(schema=schema.id, encoding=args.schema_encoding)

        requests_topic = gcp.pubsub.Topic(
            f"{name}-requests",
            name=topo.requests_topic,
            project=args.project,
            labels=labels,
            schema_settings=schema_settings,
            opts=child,
        )
        dead_letter_topic = gcp.pubsub.Topic(
            f"{name}-dead-letter",
            name=topo.dead_letter_topic,
            project=args.project,
            labels=labels,
            opts=child,
        )
        # A dead-letter topic without a subscription drops what it receives (docs/PLATFORM.md).
        dead_letter_subscription = gcp.pubsub.Subscription(
            f"{name}-dead-letter-hold",
            name=topo.dead_letter_subscription,
            topic=dead_letter_topic.id,
            project=args.project,
            labels=labels,
            ack_deadline_seconds=60,
            message_retention_duration=duration(args.dead_letter_retention_s),
            expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=NEVER_EXPIRE),
            opts=child,
        )
        # Every lane's workers' subscription is built by the same function, so they cannot drift.
        requests_subscription = worker_subscription(
            f"{name}-requests-workers",
            topo.requests_subscription,
            requests_topic.id,
            topo,
            dead_letter_topic.id,
            project=args.project,
            labels=labels,
            opts=child,
        )

        # Without these two grants the service agent cannot forward, and messages retry forever.
        # ServiceIdentity names the agent (and creates it in a project that has none yet) through the
        # Service Usage API; looking up the project number instead needs the Cloud Resource Manager API.
        agent_identity = gcp.projects.ServiceIdentity(
            f"{name}-pubsub-agent", project=args.project, service="pubsub.googleapis.com", opts=child
        )
        agent = agent_identity.email.apply(lambda email: f"serviceAccount:{email}")
        gcp.pubsub.TopicIAMMember(
            f"{name}-dead-letter-publisher",
            topic=dead_letter_topic.name,
            project=args.project,
            role="roles/pubsub.publisher",
            member=agent,
            opts=child,
        )
        gcp.pubsub.SubscriptionIAMMember(
            f"{name}-dead-letter-source-subscriber",
            subscription=requests_subscription.name,
            project=args.project,
            role="roles/pubsub.subscriber",
            member=agent,
            opts=child,
        )

        self.lane_subscription_names = {}
        self.lane_topic_ids = {}
        if args.lanes is not None:
            lanes = LaneQueues(
                name,
                topo,
                args.lanes,
                project=args.project,
                labels=labels,
                dead_letter_topic_id=dead_letter_topic.id,
                pubsub_agent=agent,
                opts=child,
            )
            self.lane_subscription_names = {
                lane: (requests_subscription.name if lane == args.lanes.default else lanes.subscriptions[lane].name)
                for lane in args.lanes.names
            }
            self.lane_topic_ids = {
                lane: (requests_topic.id if lane == args.lanes.default else lanes.topics[lane].id)
                for lane in args.lanes.names
            }

        results_topic = gcp.pubsub.Topic(
            f"{name}-results",
            name=topo.results_topic,
            project=args.project,
            labels=labels,
            opts=child,
        )
        results_subscription: gcp.pubsub.Subscription | None = None
        if args.results_subscription:
            results_subscription = gcp.pubsub.Subscription(
                f"{name}-results-clients",
                name=topo.results_subscription,
                topic=results_topic.id,
                project=args.project,
                labels=labels,
                ack_deadline_seconds=60,
                message_retention_duration=duration(topo.message_retention_s),
                expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=NEVER_EXPIRE),
                opts=child,
            )

        self.requests_topic_id = requests_topic.id
        self.requests_topic_name = requests_topic.name
        self.requests_subscription_id = requests_subscription.id
        self.requests_subscription_name = requests_subscription.name
        self.dead_letter_topic_id = dead_letter_topic.id
        self.dead_letter_topic_name = dead_letter_topic.name
        self.dead_letter_subscription_id = dead_letter_subscription.id
        self.dead_letter_subscription_name = dead_letter_subscription.name
        self.results_topic_id = results_topic.id
        self.results_topic_name = results_topic.name
        self.results_subscription_id = results_subscription.id if results_subscription else None
        self.results_subscription_name = results_subscription.name if results_subscription else None
        self.schema_id = schema.id if schema else None
        self.register_outputs(
            {
                "requests_topic_id": self.requests_topic_id,
                "requests_topic_name": self.requests_topic_name,
                "requests_subscription_id": self.requests_subscription_id,
                "requests_subscription_name": self.requests_subscription_name,
                "dead_letter_topic_id": self.dead_letter_topic_id,
                "dead_letter_topic_name": self.dead_letter_topic_name,
                "dead_letter_subscription_id": self.dead_letter_subscription_id,
                "dead_letter_subscription_name": self.dead_letter_subscription_name,
                "results_topic_id": self.results_topic_id,
                "results_topic_name": self.results_topic_name,
                "results_subscription_id": self.results_subscription_id,
                "results_subscription_name": self.results_subscription_name,
                "schema_id": self.schema_id,
                "lane_subscription_names": self.lane_subscription_names,
                "lane_topic_ids": self.lane_topic_ids,
            }
        )
