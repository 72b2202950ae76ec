"""A chain of models: each stage's answers become the next stage's requests.

Each stage is an ordinary asyncinfer queue with its own pool (so each scales and picks its GPU on its
own); a stage forwarder (asyncinfer.client.pipeline.StageForwarder) reads a stage's results and
publishes the next stage's requests, acknowledging a result only after every request it leads to was
published. A stage may fan out: one answer carries a list under `fan_out`, and each item becomes one
child request. The last stage's results topic carries the pipeline's answers, each with its lineage.
"""

from __future__ import annotations

from dataclasses import dataclass

from asyncinfer.core.topology import QueueTopology


@dataclass(frozen=True)
class Stage:
    """One model of the chain. `queue` names its topics (`<queue>-requests`, ...); `fan_out` is the key
    of its output that lists the children, each an object whose `input_key` holds base64 bytes."""

    name: str
    model: str
    queue: str
    fan_out: str | None = None
    input_key: str = "png_b64"


@dataclass(frozen=True)
class Pipeline:
    name: str
    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        if len(self.stages) < 2:
            raise ValueError(f"pipeline {self.name!r} needs at least two stages; one stage is a plain queue")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"pipeline {self.name!r} names a stage twice: {names}")
        for stage in self.stages[:-1]:
            if stage.fan_out is None:
                raise ValueError(
                    f"stage {stage.name!r} feeds the next stage but names no fan_out key "
                    "(the output list whose items become the next stage's requests)"
                )
        if self.stages[-1].fan_out is not None:
            raise ValueError(f"the last stage {self.stages[-1].name!r} has no next stage to fan out to")
        for stage in self.stages:
            QueueTopology(name=stage.queue)  # the queue name must be valid before anything is created

    @property
    def first(self) -> Stage:
        return self.stages[0]

    @property
    def last(self) -> Stage:
        return self.stages[-1]

    def after(self, stage: Stage) -> Stage:
        return self.stages[self.stages.index(stage) + 1]

    def topology(self, stage: Stage, **settings: int) -> QueueTopology:
        return QueueTopology(name=stage.queue, **settings)  # type: ignore[arg-type]

