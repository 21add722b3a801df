"""Training the package's networks: one loop, the data, and a trainer per network.

- :mod:`~pytexsynth.training.loop`: :func:`train` (Adam, schedule, exact ``resume=``, DDP
  under torchrun), :func:`process_group`.
- :mod:`~pytexsynth.training.checkpoint`: checksummed checkpoints with the run's settings,
  :func:`load_checkpoint`.
- :mod:`~pytexsynth.training.data`: :class:`ContentFolder` (the user's images), :func:`augment`.
- :mod:`~pytexsynth.training.trainers`: :func:`train_texture_network`, :func:`train_stylization_network`.
- :mod:`~pytexsynth.training.inverse`: :func:`train_inverse_network` (style-swap's decoder).
- :mod:`~pytexsynth.training.adain`: :func:`train_adain_decoder` (AdaIN's decoder).
"""

from .adain import train_adain_decoder
from .data import ContentFolder, augment
from .inverse import train_inverse_network
from .loop import CHECKPOINT_FORMAT, TrainResult, load_checkpoint, process_group, train
from .trainers import train_stylization_network, train_texture_network

__all__ = ["train", "TrainResult", "load_checkpoint", "process_group", "CHECKPOINT_FORMAT", "ContentFolder", "augment",
           "train_texture_network", "train_stylization_network", "train_inverse_network",
           "train_adain_decoder"]
