"""Operator tools, the top layer: the ``crmsync`` command line (``ops.cli``), the one-machine
Prefect stack (``ops.stack``), the low-latency push worker and the demo. They import the flows and
the engine; nothing below imports them (``make lint`` checks it with import-linter)."""
