"""What every asyncinfer audience shares: the scaling policy, schedules, queue topology, the
request/result contract, the worker's settings and the facts about Google Cloud they rest on.

Pure Python over pydantic: no Pub/Sub client, no torch, no Pulumi.
"""
