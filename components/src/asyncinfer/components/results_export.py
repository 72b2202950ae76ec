"""Results into BigQuery: a Pub/Sub BigQuery subscription on the results topic writes each result as a row.

No code runs for it: Pub/Sub itself writes every message on the results topic to the table, using
the table's schema (`use_table_schema`) to map the result's JSON fields to columns. The schema is
derived from the contract (`InferenceResult`), so a field added there becomes a column at the next
`pulumi up`. Free-form objects (`output`, `message_attributes`) have no fixed columns and are left
out (`drop_unknown_fields`): the table holds what cost and latency reports need; outputs stay on
the results topic and in the claim-check bucket. docs/OPERATIONS.md has the query for cost per model
per day.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_gcp as gcp
from pydantic import BaseModel

from asyncinfer.core.contract import InferenceResult

#: BigQuery dataset ids: letters, digits and underscores, at most 1024 characters.
_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
#: Table ids: kept to the same safe alphabet (BigQuery allows more; nothing here needs it).
_TABLE = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_SCALARS = {"string": "STRING", "integer": "INT64", "number": "FLOAT64", "boolean": "BOOL"}


class SchemaDerivationError(ValueError):
    """A contract field has a type this mapping does not know; extend `_column` for it."""


def bigquery_schema(model: type[BaseModel] = InferenceResult) -> tuple[list[dict[str, Any]], list[str]]:
    """The BigQuery columns for `model`'s serialised JSON, and the fields left out (free-form objects).

    Every column is NULLABLE: a result leaves out what is null, and an older worker may not send a
    field a newer contract added."""
    schema = model.model_json_schema(mode="serialization")
    definitions = schema.get("$defs", {})
    left_out: list[str] = []
    columns = _record_fields(schema, definitions, left_out, prefix="")
    return columns, left_out


def _record_fields(
    schema: dict[str, Any], definitions: dict[str, Any], left_out: list[str], prefix: str
) -> list[dict[str, Any]]:
    columns = []
    for name, spec in schema.get("properties", {}).items():
        column = _column(name, spec, definitions, left_out, prefix)
        if column is not None:
            columns.append(column)
    return columns


def _column(
    name: str, spec: dict[str, Any], definitions: dict[str, Any], left_out: list[str], prefix: str
) -> dict[str, Any] | None:
    spec = _resolve(spec, definitions)
    description = spec.get("description", "")
    column: dict[str, Any] = {"name": name, "mode": "NULLABLE"}
    if description:
        column["description"] = description[:1024]
    kind = spec.get("type")
    if kind is None and "const" in spec:
        kind = {bool: "boolean", int: "integer", float: "number", str: "string"}[type(spec["const"])]
    if kind is None and "enum" in spec:
        kind = "string"
    if kind == "string" and spec.get("format") == "date-time":
        return {**column, "type": "TIMESTAMP"}
    if kind in _SCALARS:
        return {**column, "type": _SCALARS[kind]}
    if kind == "object" and spec.get("properties"):
        return {**column, "type": "RECORD", "fields": _record_fields(spec, definitions, left_out, f"{prefix}{name}.")}
    if kind == "object":
        left_out.append(f"{prefix}{name}")
        return None
    if kind == "array":
        item = _column(name, spec.get("items", {}), definitions, left_out, prefix)
        return None if item is None else {**item, **({"description": description} if description else {}),
                                          "mode": "REPEATED"}
    raise SchemaDerivationError(f"contract field {prefix}{name} has JSON Schema {spec!r}; no BigQuery type for it")


def _resolve(spec: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """Follow a $ref and unwrap `X | None` (anyOf with null) to X, keeping the description."""
    description = spec.get("description")
    if "$ref" in spec:
        spec = definitions[spec["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in spec:
        options = [o for o in spec["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise SchemaDerivationError(f"a union of {options!r} has no single BigQuery type")
        spec = _resolve(options[0], definitions)
    if description and "description" not in spec:
        spec = {**spec, "description": description}
    return spec


@dataclass(frozen=True, kw_only=True)
class ResultsExportArgs:
    #: The model's name: names the subscription (`<model>-results-bigquery`).
    model: str
    project: str
    #: The results topic's id (`projects/P/topics/<model>-results`), e.g. `Queue.results_topic_id`.
    results_topic_id: pulumi.Input[str]
    #: The BigQuery dataset; created here unless `create_dataset` is False (a shared, existing one).
    dataset: str
    table: str = "results"
    create_dataset: bool = True
    #: The dataset's location; None: BigQuery's default (US). Keep it near the stack's region.
    location: str | None = None
    #: A results table is history: protected against `pulumi destroy` unless this is False.
    deletion_protection: bool = True
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _DATASET.match(self.dataset):
            raise ValueError(
                f"asyncinfer:resultsBigqueryDataset {self.dataset!r}: a BigQuery dataset id is letters, digits "
                "and underscores (no '-' or '.'), e.g. asyncinfer_results."
            )
        if not _TABLE.match(self.table):
            raise ValueError(
                f"asyncinfer:resultsBigqueryTable {self.table!r}: use letters, digits and underscores, e.g. results."
            )


class ResultsExport(pulumi.ComponentResource):
    """Dataset (optional), day-partitioned table with the contract's columns, the Pub/Sub service agent's
    write access to it, and the BigQuery subscription on the results topic."""

    table_id: pulumi.Output[str]
    subscription_name: pulumi.Output[str]

    def __init__(self, name: str, args: ResultsExportArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("asyncinfer:index:ResultsExport", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        columns, _ = bigquery_schema()
        labels = {"asyncinfer-queue": args.model, **args.labels}
        dataset_id: pulumi.Input[str] = args.dataset
        if args.create_dataset:
            dataset = gcp.bigquery.Dataset(
                f"{name}-dataset",
                dataset_id=args.dataset,
                project=args.project,
                location=args.location,
                labels=labels,
                opts=child,
            )
            dataset_id = dataset.dataset_id
        table = gcp.bigquery.Table(
            f"{name}-table",
            dataset_id=dataset_id,
            table_id=args.table,
            project=args.project,
            schema=json.dumps(columns),
            # Cost and latency queries read a few days: partitions by completion day keep them cheap.
            time_partitioning=gcp.bigquery.TableTimePartitioningArgs(type="DAY", field="completed_at"),
            clusterings=["model", "lane"],
            deletion_protection=args.deletion_protection,
            labels=labels,
            opts=child,
        )
        # Pub/Sub writes as its service agent; without this the subscription stays PERMISSION_DENIED.
        # ServiceIdentity names the agent without the Cloud Resource Manager API (as the Queue does).
        agent = gcp.projects.ServiceIdentity(
            f"{name}-pubsub-agent", project=args.project, service="pubsub.googleapis.com", opts=child
        )
        writer = gcp.bigquery.IamMember(
            f"{name}-pubsub-writer",
            project=args.project,
            dataset_id=table.dataset_id,
            table_id=table.table_id,
            role="roles/bigquery.dataEditor",
            member=agent.email.apply(lambda email: f"serviceAccount:{email}"),
            opts=child,
        )
        subscription = gcp.pubsub.Subscription(
            f"{name}-subscription",
            name=f"{args.model}-results-bigquery",
            topic=args.results_topic_id,
            project=args.project,
            labels=labels,
            bigquery_config=gcp.pubsub.SubscriptionBigqueryConfigArgs(
                table=pulumi.Output.concat(args.project, ".", table.dataset_id, ".", table.table_id),
                use_table_schema=True,
                drop_unknown_fields=True,
            ),
            expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=""),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[writer]),
        )
        self.table_id = pulumi.Output.concat(args.project, ".", table.dataset_id, ".", table.table_id)
        self.subscription_name = subscription.name
        self.register_outputs({"table_id": self.table_id, "subscription_name": self.subscription_name})
