"""Feed-forward networks (architectures only): Texture Networks generators, the style-swap
inverse network and the AdaIN decoder. Their trainers are in :mod:`pytexsynth.training`.

Every network here records its architecture; :func:`load_model` rebuilds any of them from a file.
"""

from .adain import AdaINDecoder
from .base import SavableNetwork, load_model, network_classes, register_network, save_model
from .inverse import InverseNet
from .texture import StylizationGenerator, TextureGenerator

__all__ = ["AdaINDecoder", "InverseNet", "SavableNetwork", "StylizationGenerator", "TextureGenerator", "load_model",
           "network_classes", "register_network", "save_model"]

# Where the trainers lived before pytexsynth.training: the old import paths still work.
_MOVED = {"train_inverse_network": "pytexsynth.training", "train_texture_network": "pytexsynth.training",
          "train_stylization_network": "pytexsynth.training", "ContentFolder": "pytexsynth.training",
          "augment": "pytexsynth.training"}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
