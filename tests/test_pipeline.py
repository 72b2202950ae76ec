"""Model chains with fan-out: a page is cut into symbol crops by a first stage, the symbol classifier
answers each crop, and the client joins the answers per page. The stage logic alone, and the whole
chain on the real emulator with real worker processes (including a forwarder that dies halfway)."""

from __future__ import annotations

import base64
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from asyncinfer.client.pipeline import PipelineJoiner, StageForwarder, joined_summary
from asyncinfer.core.contract import InferenceRequest
from asyncinfer.core.pipeline import Pipeline, Stage
from asyncinfer.core.topology import QueueTopology
from drawing_symbols import HANDLER as SYMBOLS_HANDLER
from drawing_symbols.page import SEGMENT_HANDLER, PageSegmenter, render_page
from drawing_symbols.symbols import build_handler
from tests.conftest import PROJECT
from tests.support.processes import spawn_worker, stop, wait_started


def test_pipelines_are_checked_when_declared() -> None:
    with pytest.raises(ValueError, match="at least two stages"):
        Pipeline("p", (Stage("a", "m", "queue-a"),))
    with pytest.raises(ValueError, match="names no fan_out"):
        Pipeline("p", (Stage("a", "m", "queue-a"), Stage("b", "m", "queue-b")))
    with pytest.raises(ValueError, match="no next stage"):
        Pipeline("p", (Stage("a", "m", "queue-a", fan_out="x"), Stage("b", "m", "queue-b", fan_out="y")))
    with pytest.raises(ValueError, match="queue name"):
        Pipeline("p", (Stage("a", "m", "Bad_Queue", fan_out="x"), Stage("b", "m", "queue-b")))


def test_the_segmenter_finds_every_symbol_and_the_classifier_reads_the_crops() -> None:
    """Seeded pages: every placed symbol is found once, and the classifier's accuracy on the crops is
    close to its accuracy on clean renders."""
    segmenter = PageSegmenter()
    classifier = build_handler()
    classifier.load(torch.device("cpu"))
    rng = np.random.default_rng(11)
    placed_total = matched = correct = spurious = 0
    for _ in range(10):
        png, placed = render_page(rng, 8)
        crops = segmenter.predict(segmenter.decode(png)[None])[0]["crops"]
        tensors = [classifier.decode(base64.b64decode(c["png_b64"])) for c in crops]
        predictions = classifier.predict(torch.stack(tensors))
        seen: set[int] = set()
        for crop, prediction in zip(crops, predictions, strict=True):
            centre = (crop["x"] + crop["size"] / 2, crop["y"] + crop["size"] / 2)
            hits = [i for i, s in enumerate(placed) if s.contains(*centre) and i not in seen]
            if not hits:
                spurious += 1
                continue
            seen.add(hits[0])
            matched += 1
            correct += prediction["label"] == placed[hits[0]].label
        placed_total += len(placed)
    print(f"placed {placed_total}, found {matched}, spurious {spurious}, classified right {correct}")
    assert matched == placed_total and spurious <= 2
    assert correct / matched >= 0.85


@pytest.mark.emulator
def test_pages_through_two_stages_are_joined_with_lineage(emulator_host: str, tmp_path: Path) -> None:
    from asyncinfer.client.pubsub import subscriber_client
    from asyncinfer.tools.local.topology_admin import ensure_topology

    suffix = uuid.uuid4().hex[:8]
    pipeline = Pipeline("pages", (
        Stage("segment", "segment", f"p{suffix}-pages", fan_out="crops"),
        Stage("classify", "symbols", f"p{suffix}-symbols"),
    ))
    topologies = [QueueTopology(name=s.queue, ack_deadline_s=10, min_retry_backoff_s=0, max_retry_backoff_s=1)
                  for s in pipeline.stages]
    for topology in topologies:
        ensure_topology(PROJECT, topology, with_taps=False)
    forward_subscription = f"{topologies[0].results_topic}-forward"
    subscriber = subscriber_client()
    subscriber.create_subscription(name=f"projects/{PROJECT}/subscriptions/{forward_subscription}",
                                   topic=f"projects/{PROJECT}/topics/{topologies[0].results_topic}")
    subscriber.close()
    workers = [
        spawn_worker(emulator_host, PROJECT, topologies[0], SEGMENT_HANDLER, tmp_path / "segment.log"),
        spawn_worker(emulator_host, PROJECT, topologies[1], SYMBOLS_HANDLER, tmp_path / "symbols.log"),
    ]
    died_once: list[str] = []

    def die_on_first(result: Any) -> None:
        # The forwarder dies after publishing the first page's children and before acknowledging it.
        # Only a page with symbols has children to duplicate (the blank and the bad page have none).
        if not died_once and result.ok and (result.request_id or "").startswith("page-"):
            died_once.append(result.request_id)
            raise RuntimeError("forwarder killed")

    forwarder = StageForwarder(PROJECT, pipeline, pipeline.first, forward_subscription, on_forwarded=die_on_first)
    try:
        for worker in workers:
            wait_started(worker)
        forwarder.start()
        with PipelineJoiner(PROJECT, pipeline) as joiner:
            rng = np.random.default_rng(5)
            pages = {f"page-{i}": render_page(rng, 6) for i in range(3)}
            blank, _ = render_page(rng, 0)
            for root, (png, _) in pages.items():
                joiner.submit(InferenceRequest.inline(root, "segment", png)).result(timeout=30)
            joiner.submit(InferenceRequest.inline("blank", "segment", blank)).result(timeout=30)
            joiner.submit(InferenceRequest.inline("not-a-page", "segment", b"not an image")).result(timeout=30)
            answers = joiner.wait([*pages, "blank", "not-a-page"], timeout_s=120)
            # The re-forwarded children of the page whose forwarding died are answered again (under the
            # same ids); those second answers may come after the page was already joined.
            deadline = time.monotonic() + 60
            while died_once and answers[died_once[0]].duplicates < len(pages[died_once[0]][1]):
                assert time.monotonic() < deadline, "the re-forwarded children were not answered again"
                time.sleep(0.2)

        for root, (_, placed) in pages.items():
            answer = answers[root]
            assert answer.complete and answer.ok, joined_summary(answer)
            children = answer.ordered()
            assert len(children) == len(placed)
            for index, child in enumerate(children):
                lineage = child.lineage
                assert lineage is not None and lineage.root_request_id == root and lineage.stage == "classify"
                assert (lineage.index, lineage.count, lineage.parent_request_id) == (index, len(placed), root)
                assert child.request_id == f"{root}.segment.{index}"
                assert [u.stage for u in lineage.upstream] == ["segment"]
                assert (lineage.upstream[0].timings.inference_ms or 0) > 0 and (child.timings.inference_ms or 0) > 0
                assert {"x", "y", "size"} <= set(lineage.item)
            found = {(c.lineage.item["x"], c.lineage.item["y"]) for c in children if c.lineage}
            assert len(found) == len(placed)
        # The forwarder died once: that page's children went out twice, under the same ids.
        assert died_once and answers[died_once[0]].duplicates == len(pages[died_once[0]][1])
        assert forwarder.counts["retried"] == 1
        assert answers["blank"].final is not None and answers["blank"].final.ok
        assert answers["blank"].final.lineage is not None and answers["blank"].final.lineage.count == 0
        failed = answers["not-a-page"].final
        assert failed is not None and not failed.ok and failed.error is not None
        assert failed.lineage is not None and failed.lineage.stage == "segment"
        assert failed.error.message.startswith("stage segment:") and failed.error.code == "not_an_image"
    finally:
        forwarder.close()
        for worker in workers:
            stop(worker)


@pytest.mark.emulator
def test_the_pipeline_demo_runs_from_zero_and_loses_nothing(emulator_host: str, tmp_path: Path) -> None:
    """`asyncinfer demo --pipeline`'s engine on the session's emulator: both pools start at zero."""
    from asyncinfer.tools.pipeline_demo import run_pipeline_demo

    report = run_pipeline_demo(pages=4, symbols_per_page=4, max_workers=1, seed=3, timeout_s=120,
                               state_dir=tmp_path / "pipeline")
    assert report["failures"] == [], report
    assert report["pages_lost"] == 0 and report["symbols_found"] == report["symbols_placed"] == 16
    for stage in ("segment", "classify"):
        figures = report["stages"][stage]
        assert figures["lost"] == 0 and figures["dead-lettered"] == 0 and figures["peak workers"] >= 1
    assert report["stages"]["classify"]["submitted"] == report["stages"]["classify"]["ok"] >= 16
