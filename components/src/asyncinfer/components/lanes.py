"""Priority lanes in the cloud: a topic and worker subscription per lane, one backlog metric per lane.

The policy (which lanes, their assignments, the fallback's) is asyncinfer.core.lanes; this module
only turns it into Pub/Sub resources and autoscaler metric signals, with the names QueueTopology
gives (the default lane keeps the queue's own topic and subscription).
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_gcp as gcp

from asyncinfer.core import gce
from asyncinfer.core.lanes import LaneSet
from asyncinfer.core.topology import QueueTopology
from asyncinfer.core.worker_settings import LaneSubscription


def duration(seconds: int) -> str:
    """Pub/Sub's duration strings ("600s")."""
    return f"{int(seconds)}s"


def worker_subscription(
    resource_name: str,
    subscription: str,
    topic_id: pulumi.Input[str],
    topology: QueueTopology,
    dead_letter_topic_id: pulumi.Input[str],
    *,
    project: pulumi.Input[str] | None,
    labels: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> gcp.pubsub.Subscription:
    """A workers' pull subscription with the topology's delivery settings: every lane's is the same."""
    return gcp.pubsub.Subscription(
        resource_name,
        name=subscription,
        topic=topic_id,
        project=project,
        labels=dict(labels),
        ack_deadline_seconds=topology.ack_deadline_s,
        message_retention_duration=duration(topology.message_retention_s),
        enable_exactly_once_delivery=topology.exactly_once_delivery,
        # A nack is redelivered after an exponential backoff instead of at once, so a failing
        # dependency is not hammered by the whole backlog.
        retry_policy=gcp.pubsub.SubscriptionRetryPolicyArgs(
            minimum_backoff=duration(topology.min_retry_backoff_s),
            maximum_backoff=duration(topology.max_retry_backoff_s),
        ),
        dead_letter_policy=gcp.pubsub.SubscriptionDeadLetterPolicyArgs(
            dead_letter_topic=dead_letter_topic_id,
            max_delivery_attempts=topology.max_delivery_attempts,
        ),
        # The empty TTL is Pub/Sub's spelling of "never expire": a quiet month must not delete a lane.
        expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=""),
        opts=opts,
    )


class LaneQueues:
    """The lanes besides the default one: each a requests topic, a workers' subscription that
    dead-letters into the queue's shared dead-letter topic, and the dead-letter grant on it."""

    def __init__(
        self,
        name: str,
        topology: QueueTopology,
        lanes: LaneSet,
        *,
        project: pulumi.Input[str] | None,
        labels: Mapping[str, str],
        dead_letter_topic_id: pulumi.Input[str],
        pubsub_agent: pulumi.Input[str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        self.topics: dict[str, gcp.pubsub.Topic] = {}
        self.subscriptions: dict[str, gcp.pubsub.Subscription] = {}
        for lane in lanes.names:
            if lane == lanes.default:
                continue
            topic = gcp.pubsub.Topic(
                f"{name}-requests-{lane}",
                name=topology.lane_requests_topic(lane),
                project=project,
                labels={**labels, "asyncinfer-lane": lane},
                opts=opts,
            )
            subscription = worker_subscription(
                f"{name}-requests-{lane}-workers",
                topology.lane_requests_subscription(lane),
                topic.id,
                topology,
                dead_letter_topic_id,
                project=project,
                labels={**labels, "asyncinfer-lane": lane},
                opts=opts,
            )
            # Without it the service agent cannot forward this lane's dead letters: they retry forever.
            gcp.pubsub.SubscriptionIAMMember(
                f"{name}-dead-letter-source-subscriber-{lane}",
                subscription=subscription.name,
                project=project,
                role="roles/pubsub.subscriber",
                member=pubsub_agent,
                opts=opts,
            )
            self.topics[lane] = topic
            self.subscriptions[lane] = subscription


def lane_backlog_metrics(
    subscription_names: Mapping[str, pulumi.Input[str]], assignments: Mapping[str, float]
) -> list[gcp.compute.RegionAutoscalerAutoscalingPolicyMetricArgs]:
    """One per-group backlog signal per lane the pool watches, each with its lane's assignment (GCE
    follows the largest recommendation; core.lanes sizes the assignments so it covers the sum)."""
    return [
        gcp.compute.RegionAutoscalerAutoscalingPolicyMetricArgs(
            name=gce.BACKLOG_METRIC,
            filter=pulumi.Output.from_input(subscription_names[lane]).apply(gce.backlog_filter),
            single_instance_assignment=assignment,
        )
        for lane, assignment in assignments.items()
    ]


def lane_subscriptions_setting(
    lanes: LaneSet, subscription_names: Mapping[str, str]
) -> list[LaneSubscription]:
    """ASYNCINFER_LANES for the workers: every lane with the subscription that carries it."""
    return [
        LaneSubscription(
            name=lane.name,
            priority=lane.priority,
            latency_goal_s=lane.latency_goal_s,
            subscription=subscription_names[lane.name],
        )
        for lane in lanes.lanes
    ]
