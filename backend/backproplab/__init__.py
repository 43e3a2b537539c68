"""backproplab: a live laboratory for backpropagation."""

__version__ = "0.1.0"

# `backproplab.watch(model)` is the function; the package stays importable as
# backproplab.watch.<module> (torch is imported only when watch() is called)
from .watch import watch  # noqa: E402

__all__ = ["__version__", "watch"]
