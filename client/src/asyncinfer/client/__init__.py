"""Submit requests to an asyncinfer queue and read their answers.

    from asyncinfer.client import AsyncInferClient, InferenceRequest, read_output
"""

from asyncinfer.client.client import Answer, AsyncInferClient
from asyncinfer.client.outputs import OutputUnavailableError, read_output
from asyncinfer.core.contract import InferenceRequest, InferenceResult

__all__ = ["Answer", "AsyncInferClient", "InferenceRequest", "InferenceResult", "OutputUnavailableError", "read_output"]
