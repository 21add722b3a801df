"""pytexsynth: C++/CUDA-accelerated neural texture synthesis and style transfer for PyTorch.

Layout: :mod:`~pytexsynth.ops` (the custom ops), :mod:`~pytexsynth.reference` (their pure-PyTorch
versions), :mod:`~pytexsynth.losses` and :mod:`~pytexsynth.nn` (modules over the ops),
:mod:`~pytexsynth.models` (VGG-19), :mod:`~pytexsynth.synthesis` (optimisation-based methods),
:mod:`~pytexsynth.networks` (feed-forward architectures), :mod:`~pytexsynth.training` (the loop
and the trainers), :mod:`~pytexsynth.io` (images, atomic writes), :mod:`~pytexsynth.cli`.
"""

import os as _os

# MKL's strict conditional numerical reproducibility: its GEMMs (the Winograd planes, the Gram
# tiles) then sum in an order that does not depend on the thread count, so an image depends only
# on the command, the seed and the machine (README, "Reproducibility"). It must be set before
# MKL's first call in the process; a value the user set is kept.
_os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from . import nn, ops, reference  # noqa: E402
from ._info import __version__, has_cuda, has_extension, info  # noqa: E402
from . import io, losses, models, networks, synthesis, training  # noqa: E402
from .models import VGG19  # noqa: E402
from .networks import InverseNet, load_model, save_model  # noqa: E402
from .synthesis import style_swap_transfer, synthesize_texture, transfer_style, transfer_style_fast  # noqa: E402
from .training import (train_adain_decoder, train_inverse_network, train_stylization_network,  # noqa: E402
                       train_texture_network)

__all__ = [
    "__version__", "has_cuda", "has_extension", "info", "nn", "ops", "reference",
    "io", "losses", "models", "networks", "synthesis", "training", "VGG19",
    "load_model", "save_model", "train_stylization_network", "train_texture_network",
    "synthesize_texture", "transfer_style",
    "InverseNet", "train_inverse_network", "style_swap_transfer", "transfer_style_fast", "train_adain_decoder",
]
