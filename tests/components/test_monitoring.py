from __future__ import annotations

import json

from asyncinfer.components.monitoring import Monitoring, MonitoringArgs
from asyncinfer.components.queue import Queue, QueueArgs
from tests.components.conftest import PROJECT, Engine

ALERT = "gcp:monitoring/alertPolicy:AlertPolicy"


def build() -> None:
    for model in ("symbols", "ocr"):
        queue = Queue(f"{model}-q", QueueArgs.for_model(model, project=PROJECT))
        Monitoring(
            f"{model}-mon",
            MonitoringArgs(
                project=PROJECT,
                model=model,
                subscription_name=queue.requests_subscription_name,
                dead_letter_subscription_name=queue.dead_letter_subscription_name,
                instance_group_names=[f"{model}-group-a", f"{model}-group-b"],
                latency_goal_s=600,
                boot_to_ready_s=90,
            ),
        )


def filters(resource_inputs: dict) -> list[str]:
    return [c["conditionThreshold"]["filter"] for c in resource_inputs["conditions"]]


def test_dashboard_and_alerts_name_their_own_subscription(engine: Engine) -> None:
    graph = engine.run(build)
    assert graph.count("gcp:monitoring/dashboard:Dashboard") == 2
    assert graph.count(ALERT) == 6
    for model in ("symbols", "ocr"):
        other = "ocr" if model == "symbols" else "symbols"
        late = graph.by_name(f"{model}-mon-latency-goal").inputs
        (late_filter,) = filters(late)
        assert "oldest_unacked_message_age" in late_filter
        assert f'subscription_id = "{model}-requests-workers"' in late_filter
        assert late["conditions"][0]["conditionThreshold"]["thresholdValue"] == 600

        dead = graph.by_name(f"{model}-mon-dead-letters").inputs
        (dead_filter,) = filters(dead)
        assert f'subscription_id = "{model}-dead-letter-hold"' in dead_filter
        assert "num_undelivered_messages" in dead_filter
        assert dead["conditions"][0]["conditionThreshold"]["comparison"] == "COMPARISON_GT"

        stuck = graph.by_name(f"{model}-mon-backlog-without-workers").inputs
        backlog_filter, vms_filter = filters(stuck)
        assert stuck["combiner"] == "AND"
        assert f'subscription_id = "{model}-requests-workers"' in backlog_filter
        assert f'one_of("{model}-group-a", "{model}-group-b")' in vms_filter
        # Longer than a boot plus the metrics' lag, in whole minutes.
        assert {c["conditionThreshold"]["duration"] for c in stuck["conditions"]} == {"240s"}

        for name in (f"{model}-mon-latency-goal", f"{model}-mon-dead-letters", f"{model}-mon-backlog-without-workers"):
            assert all(other not in f for f in filters(graph.by_name(name).inputs))

        dashboard = json.loads(graph.by_name(f"{model}-mon-dashboard").inputs["dashboardJson"])
        titles = [w["title"] for w in dashboard["gridLayout"]["widgets"]]
        assert len(titles) == 5
        text = json.dumps(dashboard)
        assert f"{model}-requests-workers" in text and f"{model}-dead-letter-hold" in text and other not in text


def test_dashboard_json_is_stable_and_in_the_apis_own_shape() -> None:
    """No diff on every `pulumi up`: the same text each time, no floats, the API's defaults spelt out."""
    from asyncinfer.components.monitoring import dashboard_json

    args = ("symbols", "symbols-requests-workers", "symbols-dead-letter-hold", ["symbols-workers"])
    text = dashboard_json(*args)
    assert text == dashboard_json(*args)
    assert json.dumps(json.loads(text), sort_keys=True, indent=2) == text  # keys sorted, one layout
    floats: list[float] = []
    json.loads(text, parse_float=lambda v: floats.append(float(v)) or float(v))
    assert floats == []
    dashboard = json.loads(text)
    assert dashboard["gridLayout"]["columns"] == "2"  # int64 as the API returns it
    for widget in dashboard["gridLayout"]["widgets"]:
        chart = widget["xyChart"]
        assert chart["chartOptions"] == {"mode": "COLOR"} and chart["yAxis"]["scale"] == "LINEAR"
        assert all(d["targetAxis"] == "Y1" and d["minAlignmentPeriod"] == "60s" for d in chart["dataSets"])
