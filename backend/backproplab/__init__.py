"""backproplab: a live laboratory for backpropagation."""

__version__ = "0.1.0"
