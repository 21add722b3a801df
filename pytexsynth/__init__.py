"""pytexsynth: C++/CUDA-accelerated neural texture synthesis and style transfer for PyTorch."""

from . import nn, ops, reference
from ._info import __version__, has_cuda, has_extension, info
from . import io, losses, models, networks, training
from .models import VGG19
from .networks import load_model, save_model
from .networks.trainers import train_stylization_network, train_texture_network
from .synthesis import synthesize_texture, transfer_style
from .networks import InverseNet, train_inverse_network
from .style_transfer import style_swap_transfer

__all__ = [
    "__version__", "has_cuda", "has_extension", "info", "nn", "ops", "reference",
    "io", "losses", "models", "networks", "training", "VGG19",
    "load_model", "save_model", "train_stylization_network", "train_texture_network",
    "synthesize_texture", "transfer_style",
    "InverseNet", "train_inverse_network", "style_swap_transfer",
]
