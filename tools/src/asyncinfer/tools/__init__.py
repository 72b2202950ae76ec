"""The `asyncinfer` developer command line and what only it uses: local stack, bench, chaos, simulator."""
