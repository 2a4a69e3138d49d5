"""gpusched: plan GPU/TPU allocations ahead in time, for the live cluster and for what-ifs alike."""

__version__ = "0.1.0"
