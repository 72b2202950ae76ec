"""A dashboard and the alerts that say a model's latency goal is at risk.

Every filter names this model's own subscription or instance groups (built from their names, never
typed by hand), so one stack's alerts never fire on another model's queue.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

# Pub/Sub's subscription metrics are sampled every 60 s and lag up to about 2 minutes: one number,
# shared with the pool's reaction time.
from asyncinfer.core.gce import METRIC_LAG_S


def subscription_filter(metric: str, subscription_name: str) -> str:
    return (
        f'metric.type = "pubsub.googleapis.com/subscription/{metric}" AND resource.type = "pubsub_subscription" '
        f'AND resource.labels.subscription_id = "{subscription_name}"'
    )


def instance_group_filter(group_names: Sequence[str]) -> str:
    names = ", ".join(f'"{n}"' for n in group_names)
    return (
        'metric.type = "compute.googleapis.com/instance_group/size" AND resource.type = "instance_group" '
        f"AND resource.labels.instance_group_name = one_of({names})"
    )


def whole_minutes(seconds: float) -> str:
    """Alert durations must be whole minutes."""
    return f"{max(60, math.ceil(seconds / 60) * 60)}s"


@dataclass(frozen=True, kw_only=True)
class MonitoringArgs:
    project: pulumi.Input[str]
    model: str
    subscription_name: pulumi.Input[str]
    dead_letter_subscription_name: pulumi.Input[str]
    instance_group_names: Sequence[pulumi.Input[str]]
    latency_goal_s: float
    boot_to_ready_s: int
    notification_channels: Sequence[str] = ()

    def __post_init__(self) -> None:
        if not self.instance_group_names:
            raise ValueError("instance_group_names is empty; monitoring needs the pool's groups.")
        if self.latency_goal_s <= 0:
            raise ValueError("latency_goal_s must be > 0.")


def _chart(title: str, filter_: str, aligner: str, reducer: str | None = None) -> dict[str, Any]:
    # Written the way the Monitoring API returns it (its defaults spelt out: targetAxis, chartOptions,
    # yAxis, minAlignmentPeriod, empty lists), so the provider finds nothing to change on the next
    # `pulumi up` (terraform-provider-google #7242, #16173: perma-diffs from the API's normalization).
    aggregation: dict[str, Any] = {"alignmentPeriod": "60s", "perSeriesAligner": aligner, "groupByFields": []}
    if reducer:
        aggregation["crossSeriesReducer"] = reducer
    return {
        "title": title,
        "xyChart": {
            "chartOptions": {"mode": "COLOR"},
            "dataSets": [
                {
                    "minAlignmentPeriod": "60s",
                    "plotType": "LINE",
                    "targetAxis": "Y1",
                    "timeSeriesQuery": {"timeSeriesFilter": {"filter": filter_, "aggregation": aggregation}},
                }
            ],
            "thresholds": [],
            "timeshiftDuration": "0s",
            "yAxis": {"label": "y1Axis", "scale": "LINEAR"},
        },
    }


def dashboard_json(model: str, subscription: str, dead_letter_subscription: str, groups: Sequence[str]) -> str:
    tiles = [
        _chart(
            "Backlog (undelivered requests)", subscription_filter("num_undelivered_messages", subscription), "ALIGN_MAX"
        ),
        _chart(
            "Oldest unacked request age (s)",
            subscription_filter("oldest_unacked_message_age", subscription),
            "ALIGN_MAX",
        ),
        _chart("Worker VMs", instance_group_filter(groups), "ALIGN_MEAN", "REDUCE_SUM"),
        _chart(
            "Dead letters waiting",
            subscription_filter("num_undelivered_messages", dead_letter_subscription),
            "ALIGN_MAX",
        ),
        # Time from delivery to ack: how long a worker holds a request (batching wait + inference).
        _chart(
            "Processing latency p95 (ms)", subscription_filter("ack_latencies", subscription), "ALIGN_PERCENTILE_95"
        ),
    ]
    # int64 fields come back from the API as JSON strings ("2"), and keys in a fixed order: the same
    # text on every run, no float that could print differently.
    layout = {"columns": "2", "widgets": tiles}
    return json.dumps({"displayName": f"asyncinfer {model}", "gridLayout": layout}, sort_keys=True, indent=2)


def _threshold(
    display_name: str,
    filter_: pulumi.Input[str],
    comparison: str,
    value: float,
    duration: str,
    aligner: str,
    reducer: str | None = None,
) -> gcp.monitoring.AlertPolicyConditionArgs:
    return gcp.monitoring.AlertPolicyConditionArgs(
        display_name=display_name,
        condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
            filter=filter_,
            comparison=comparison,
            threshold_value=value,
            duration=duration,
            aggregations=[
                gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                    alignment_period="60s", per_series_aligner=aligner, cross_series_reducer=reducer
                )
            ],
            # A pool at zero VMs reports nothing for some series; absence must not hide the alert.
            evaluation_missing_data="EVALUATION_MISSING_DATA_ACTIVE" if reducer else None,
        ),
    )


class Monitoring(pulumi.ComponentResource):
    dashboard_id: pulumi.Output[str]
    alert_policy_ids: list[pulumi.Output[str]]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("asyncinfer:index:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        subscription = pulumi.Output.from_input(args.subscription_name)
        dead_letters = pulumi.Output.from_input(args.dead_letter_subscription_name)
        groups = pulumi.Output.all(*args.instance_group_names)
        channels = list(args.notification_channels)

        dashboard = gcp.monitoring.Dashboard(
            f"{name}-dashboard",
            project=args.project,
            dashboard_json=pulumi.Output.all(subscription, dead_letters, groups).apply(
                lambda v: dashboard_json(args.model, v[0], v[1], v[2])
            ),
            opts=child,
        )

        late = gcp.monitoring.AlertPolicy(
            f"{name}-latency-goal",
            project=args.project,
            display_name=f"asyncinfer {args.model}: a request is older than the latency goal",
            combiner="OR",
            conditions=[
                _threshold(
                    f"oldest unacked request > {args.latency_goal_s:.0f} s",
                    subscription.apply(lambda s: subscription_filter("oldest_unacked_message_age", s)),
                    "COMPARISON_GT",
                    args.latency_goal_s,
                    "60s",
                    "ALIGN_MAX",
                )
            ],
            documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                mime_type="text/markdown",
                content="A request has waited longer than the latency goal. Check the pool's VM count "
                "(Spot capacity, quota, max workers) and the workers' logs.",
            ),
            notification_channels=channels,
            opts=child,
        )
        dead = gcp.monitoring.AlertPolicy(
            f"{name}-dead-letters",
            project=args.project,
            display_name=f"asyncinfer {args.model}: requests in the dead-letter subscription",
            combiner="OR",
            conditions=[
                _threshold(
                    "dead letters waiting > 0",
                    dead_letters.apply(lambda s: subscription_filter("num_undelivered_messages", s)),
                    "COMPARISON_GT",
                    0,
                    "60s",
                    "ALIGN_MAX",
                )
            ],
            documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                mime_type="text/markdown",
                content="Requests failed every delivery attempt. Inspect them in the dead-letter subscription, "
                "fix the cause, and replay them to the requests topic.",
            ),
            notification_channels=channels,
            opts=child,
        )
        # Scale-from-zero that never fires is the classic trap: a backlog with no VM
        # for longer than a boot (plus the metrics' lag) means the first VM is not coming.
        stuck_after = whole_minutes(args.boot_to_ready_s + METRIC_LAG_S)
        stuck = gcp.monitoring.AlertPolicy(
            f"{name}-backlog-without-workers",
            project=args.project,
            display_name=f"asyncinfer {args.model}: backlog but no worker VM",
            combiner="AND",
            conditions=[
                _threshold(
                    "backlog > 0",
                    subscription.apply(lambda s: subscription_filter("num_undelivered_messages", s)),
                    "COMPARISON_GT",
                    0,
                    stuck_after,
                    "ALIGN_MAX",
                ),
                _threshold(
                    "worker VMs = 0",
                    groups.apply(instance_group_filter),
                    "COMPARISON_LT",
                    1,
                    stuck_after,
                    "ALIGN_MEAN",
                    "REDUCE_SUM",
                ),
            ],
            documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                mime_type="text/markdown",
                content="Requests are waiting and no worker VM has started for longer than a boot. Check Spot "
                "GPU capacity in the pool's zones, GPU quota and the autoscaler's status.",
            ),
            notification_channels=channels,
            opts=child,
        )

        self.dashboard_id = dashboard.id
        self.alert_policy_ids = [late.id, dead.id, stuck.id]
        self.register_outputs({"dashboard_id": self.dashboard_id, "alert_policy_ids": self.alert_policy_ids})
