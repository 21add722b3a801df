"""Feature extractors and their weights."""

from .weights import default_weights_path
from .vgg import LAYER_NAMES, VGG19, WeightsNotFoundError, check_layers, layer_channels, load_vgg19_state_dict

__all__ = ["default_weights_path", "VGG19", "LAYER_NAMES", "WeightsNotFoundError", "check_layers", "layer_channels",
           "load_vgg19_state_dict"]
