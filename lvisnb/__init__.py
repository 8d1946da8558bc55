"""lvisnb: a notebook-first research kit for long-tail instance segmentation on LVIS."""

__version__ = "0.1.0"
