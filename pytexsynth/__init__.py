"""pytexsynth: C++/CUDA-accelerated neural texture synthesis and style transfer for PyTorch."""

from . import nn, ops, reference
from ._info import __version__, has_cuda, has_extension, info

__all__ = ["__version__", "has_cuda", "has_extension", "info", "nn", "ops", "reference"]
