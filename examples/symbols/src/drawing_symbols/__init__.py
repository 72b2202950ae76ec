"""The example model: recognising GD&T symbols cropped from engineering drawings.

It plugs into asyncinfer like any user's model: its container image sets ASYNCINFER_HANDLER to HANDLER.
"""

#: The "module:factory" string the worker loads.
HANDLER = "drawing_symbols.symbols:build_handler"
