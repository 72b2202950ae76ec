"""The local stack: the official Pub/Sub emulator, the queue topology, and a pool controller that
scales worker processes on the backlog."""
