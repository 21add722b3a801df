"""Feature extractors and their weights."""

from .weights import default_weights_path

__all__ = ["default_weights_path"]
