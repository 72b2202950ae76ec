"""Pulumi components of asyncinfer, importable from any Pulumi program.

`ModelStack` is the one-line-per-model composite; the others are its parts.
"""

from asyncinfer.components.baked_image import BakedImage, BakedImageArgs
from asyncinfer.components.model_stack import ModelStack, ModelStackArgs
from asyncinfer.components.monitoring import Monitoring, MonitoringArgs
from asyncinfer.components.queue import Queue, QueueArgs
from asyncinfer.components.schedule_scaler import ScheduleScaler, ScheduleScalerArgs
from asyncinfer.components.stack_config import StackConfig, StackConfigError
from asyncinfer.components.worker_pool import CustomMetric, GpuWorkerPool, GpuWorkerPoolArgs

__all__ = [
    "BakedImage",
    "BakedImageArgs",
    "CustomMetric",
    "GpuWorkerPool",
    "GpuWorkerPoolArgs",
    "ModelStack",
    "ModelStackArgs",
    "Monitoring",
    "MonitoringArgs",
    "Queue",
    "QueueArgs",
    "ScheduleScaler",
    "ScheduleScalerArgs",
    "StackConfig",
    "StackConfigError",
]
