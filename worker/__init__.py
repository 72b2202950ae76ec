"""What runs on the VMs: the pull consumer, batching, the model interface, the contract, the client,
the local stack and the CLI."""
