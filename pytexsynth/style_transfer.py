"""The former home of style-swap transfer, now :mod:`pytexsynth.synthesis.style_swap`; its old
import path keeps working."""

from .synthesis.style_swap import (DEFAULT_STYLE_SIZE, METHODS, default_decoder_path, load_default_decoder,
                                   style_swap_transfer, swap_target)

__all__ = ["style_swap_transfer", "default_decoder_path", "load_default_decoder", "swap_target", "METHODS",
           "DEFAULT_STYLE_SIZE"]
