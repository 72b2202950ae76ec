"""Pulumi components of asyncinfer, importable from any Pulumi program.

`ModelStack` is the one-line-per-model composite; the others are its parts.
"""

from components.baked_image import BakedImage, BakedImageArgs
from components.model_stack import ModelStack, ModelStackArgs
from components.monitoring import Monitoring, MonitoringArgs
from components.queue import Queue, QueueArgs
from components.schedule_scaler import ScheduleScaler, ScheduleScalerArgs
from components.stack_config import StackConfig, StackConfigError
from components.worker_pool import CustomMetric, GpuWorkerPool, GpuWorkerPoolArgs

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
