"""Submit requests to an asyncinfer queue and read their answers.

    from asyncinfer.client import AsyncInferClient, InferenceRequest
"""

from asyncinfer.client.client import Answer, AsyncInferClient
from asyncinfer.core.contract import InferenceRequest, InferenceResult

__all__ = ["Answer", "AsyncInferClient", "InferenceRequest", "InferenceResult"]
