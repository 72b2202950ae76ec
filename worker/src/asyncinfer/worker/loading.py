"""Find the model handler named by a "module:function" string."""

from __future__ import annotations

import importlib

from asyncinfer.worker.handler import ModelHandler


def load_handler(spec: str) -> ModelHandler:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"handler {spec!r} must look like 'package.module:factory'")
    factory = getattr(importlib.import_module(module_name), attribute, None)
    if factory is None:
        raise ValueError(f"handler {spec!r}: {module_name} has no attribute {attribute!r}")
    handler = factory()
    if not isinstance(handler, ModelHandler):
        raise TypeError(f"handler {spec!r} returned {type(handler).__name__}, which lacks load/decode/predict")
    return handler
