"""A model's stack: `pulumi up` provisions its queue, VM image, GPU worker pool and monitoring.

Everything comes from the stack's configuration (Pulumi.<stack>.yaml); see docs/COMPONENTS.md.
"""

from asyncinfer.components.model_stack import program

program()
