"""pytexsynth: C++/CUDA-accelerated neural texture synthesis and style transfer for PyTorch."""

from . import nn, ops, reference
from ._info import __version__, has_cuda, has_extension, info

__all__ = ["__version__", "has_cuda", "has_extension", "info", "nn", "ops", "reference"]

# ---- texture networks (feed-forward generators, training) ----
from . import networks, training  # noqa: E402
from .networks import load_model, save_model  # noqa: E402

__all__ += ["load_model", "networks", "save_model", "training"]
# ---- optimisation-based synthesis ----
from . import io, losses, models  # noqa: E402
from .models import VGG19  # noqa: E402
from .synthesis import synthesize_texture, transfer_style  # noqa: E402

__all__ += ["io", "losses", "models", "VGG19", "synthesize_texture", "transfer_style"]
# ---- texture networks: training ----
from .networks.trainers import train_stylization_network, train_texture_network  # noqa: E402

__all__ += ["train_stylization_network", "train_texture_network"]
