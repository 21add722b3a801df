"""Feed-forward networks: Texture Networks generators (and, later, the style-swap inverse network).

Every network here records its architecture; :func:`load_model` rebuilds any of them from a file.
"""

from .base import SavableNetwork, load_model, network_classes, register_network, save_model
from .texture import StylizationGenerator, TextureGenerator

__all__ = ["SavableNetwork", "StylizationGenerator", "TextureGenerator", "load_model", "network_classes",
           "register_network", "save_model"]
