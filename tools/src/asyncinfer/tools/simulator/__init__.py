"""A simulator of asyncinfer on GCE, and of the synchronous fleet it replaced.

It predicts cost and latency of scaling settings on a traffic trace. The scaling decisions come
from the same code the components and the local controller use (asyncinfer.core.policy and
asyncinfer.core.schedules); this package only models what GCE does around them: metric sampling and lag,
VM boot, Spot preemption, stockouts, batching and billing.

Modules: traces (read/generate traces), config (what a run is told), prices, floors (schedules),
engine (the asyncinfer pool), baseline (the synchronous fleet), results, report, plots, and the two
commands simulate_command and tune_command. Nothing is imported here, so that
`python -m asyncinfer.tools.simulator.traces` runs without importing the rest.
"""
