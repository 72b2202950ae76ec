"""The BigQuery export of results and the configured price, under Pulumi mocks: the table's columns
come from the contract, Pub/Sub's agent may write them, the subscription maps JSON fields to columns,
and the workers get the price that puts a cost into every result."""

from __future__ import annotations

import json
from typing import Any

import pytest

from asyncinfer.components.model_stack import ModelStack, ModelStackArgs
from asyncinfer.components.results_export import ResultsExportArgs, bigquery_schema
from asyncinfer.components.stack_config import StackConfigError
from asyncinfer.components.testing import run_under_mocks
from asyncinfer.core.contract import InferenceResult
from asyncinfer.core.prices import assumed_vm_price

IMAGE = "asia-northeast1-docker.pkg.dev/p/asyncinfer/symbols:1"


def test_the_table_schema_follows_the_contract() -> None:
    columns, left_out = bigquery_schema()
    by_name = {c["name"]: c for c in columns}
    # Every result field is a column, except the free-form objects, which are named as left out.
    assert set(by_name) | {n for n in left_out if "." not in n} == set(InferenceResult.model_fields)
    assert sorted(left_out) == ["lineage.item", "message_attributes", "output"]
    lineage = {f["name"]: f for f in by_name["lineage"]["fields"]}
    assert lineage["upstream"]["mode"] == "REPEATED" and lineage["upstream"]["type"] == "RECORD"
    assert by_name["completed_at"]["type"] == "TIMESTAMP"
    assert by_name["request_id"]["type"] == "STRING" and by_name["replayed"]["type"] == "BOOL"
    assert {f["name"]: f["type"] for f in by_name["cost"]["fields"]} == {
        "usd": "FLOAT64", "inference_share_ms": "FLOAT64", "price_per_hour_usd": "FLOAT64", "price_basis": "STRING",
    }
    assert all(c["mode"] == "NULLABLE" for c in columns)


def test_bad_dataset_names_fail_before_any_resource() -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        ResultsExportArgs(model="ocr", project="p", results_topic_id="t", dataset="my-results")
    with pytest.raises(StackConfigError, match="resultsBigqueryDataset"):
        ModelStackArgs.of(image=IMAGE, project="test-project", results_bigquery_dataset="has-dash")


def test_the_stack_exports_results_to_bigquery_and_prices_its_workers() -> None:
    def build() -> ModelStack:
        return ModelStack("ocr", ModelStackArgs.of(
            image=IMAGE, project="test-project", results_bigquery_dataset="asyncinfer_results",
            price_per_hour_usd=0.28, price_basis="spot L4, assumed list price",
        ))

    graph = run_under_mocks(build, project="test-project", stack="dev")
    by_type = {r.type: r for r in graph}
    table = by_type["gcp:bigquery/table:Table"]
    columns, _ = bigquery_schema()
    assert json.loads(table.inputs["schema"]) == columns
    assert table.inputs["timePartitioning"] == {"type": "DAY", "field": "completed_at"}
    assert by_type["gcp:bigquery/dataset:Dataset"].inputs["datasetId"] == "asyncinfer_results"
    writer = by_type["gcp:bigquery/iamMember:IamMember"]
    assert writer.inputs["role"] == "roles/bigquery.dataEditor"
    assert writer.inputs["member"].startswith("serviceAccount:") and "pubsub" in writer.inputs["member"]
    (export,) = [r for r in graph if r.type == "gcp:pubsub/subscription:Subscription"
                 and r.inputs.get("name") == "ocr-results-bigquery"]
    assert export.inputs["topic"].endswith("/topics/ocr-results")
    assert export.inputs["bigqueryConfig"] == {
        "table": "test-project.asyncinfer_results.results", "useTableSchema": True, "dropUnknownFields": True,
    }
    assert writer.urn in export.dependencies
    templates = [r for r in graph if r.type == "gcp:compute/instanceTemplate:InstanceTemplate"]
    rendered = json.dumps([t.inputs for t in templates])
    assert "ASYNCINFER_PRICE_PER_HOUR_USD" in rendered and "spot L4, assumed list price" in rendered


def _template_env(graph: list[Any]) -> str:
    return json.dumps([r.inputs for r in graph if r.type == "gcp:compute/instanceTemplate:InstanceTemplate"])


def test_no_export_unless_configured_and_the_assumed_price_by_default() -> None:
    graph = run_under_mocks(lambda: ModelStack("ocr", ModelStackArgs.of(image=IMAGE, project="test-project")),
                            project="test-project", stack="dev")
    assert not [r for r in graph if r.type.startswith("gcp:bigquery/")]
    # The default shape (g2-standard-4, one L4) is in the table: its Spot price, labelled assumed.
    rendered = _template_env(graph)
    assert "ASYNCINFER_PRICE_PER_HOUR_USD" in rendered and "0.28" in rendered and "ASSUMED" in rendered


def test_a_shape_the_price_table_lacks_gets_no_price() -> None:
    assumed = assumed_vm_price("nvidia-l4", "g2-standard-4", 1, spot=True)
    assert assumed is not None and assumed[0] == 0.28 and assumed[1].startswith("spot g2-standard-4")
    assert "ASSUMED" in assumed[1]
    assert assumed_vm_price("nvidia-l4", "g2-standard-8", 1, spot=True) is None
    assert assumed_vm_price("nvidia-l4", "g2-standard-4", 2, spot=True) is None
    graph = run_under_mocks(
        lambda: ModelStack("ocr", ModelStackArgs.of(image=IMAGE, project="test-project", machine_type="g2-standard-8")),
        project="test-project", stack="dev",
    )
    assert "ASYNCINFER_PRICE_PER_HOUR_USD" not in _template_env(graph)
