"""The example model: recognising GD&T symbols cropped from engineering drawings."""
