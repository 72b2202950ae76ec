"""The asyncinfer worker: what runs on each GPU VM.

A model plugs in as a `ModelHandler` (load, decode, predict) named by "module:factory" in
ASYNCINFER_HANDLER; a handler raises `InvalidInputError` for input that can never succeed (the request
gets an error result) and `TransientError` for a failure worth retrying (the message is redelivered).
"""

from asyncinfer.worker.errors import InvalidInputError, TransientError
from asyncinfer.worker.handler import ModelHandler

__all__ = ["InvalidInputError", "ModelHandler", "TransientError"]
