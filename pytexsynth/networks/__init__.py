"""Feed-forward networks: Texture Networks generators and the style-swap inverse network.

Every network here records its architecture; :func:`load_model` rebuilds any of them from a file.
"""

from .base import SavableNetwork, load_model, network_classes, register_network, save_model
from .inverse import InverseNet
from .texture import StylizationGenerator, TextureGenerator
from .train_inverse import train_inverse_network

__all__ = ["InverseNet", "SavableNetwork", "StylizationGenerator", "TextureGenerator", "load_model",
           "network_classes", "register_network", "save_model", "train_inverse_network"]
