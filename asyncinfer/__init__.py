"""Shared core of asyncinfer: the scaling policy, the calendar of scaling schedules and the queue
topology. Pure Python with no cloud or torch imports, so the Pulumi components, the worker's local
controller and the simulator can all build on the same definitions."""
