"""Optimisation-based synthesis: textures and style transfer (Gatys et al.; Risser et al.), and
style-swap (Chen & Schmidt 2016) by optimisation or in one pass through a decoder.

- :mod:`~pytexsynth.synthesis.engine`: loss terms, gradient balancing, the coarse-to-fine
  pyramid, one function per optimiser (L-BFGS, Adam), progress reports.
- :mod:`~pytexsynth.synthesis.gatys`: :func:`synthesize_texture`, :func:`transfer_style`.
- :mod:`~pytexsynth.synthesis.style_swap`: :func:`style_swap_transfer`.
- :mod:`~pytexsynth.synthesis.fast`: :func:`transfer_style_fast` (AdaIN or style-swap in one pass, + refinement).
- :mod:`~pytexsynth.synthesis.memory`: :func:`estimate_memory` and the refusal of sizes that do not fit.
- :mod:`~pytexsynth.synthesis.color`: colour preservation (YIQ luminance, colour matching).
"""

from ..losses import DEFAULT_CONTENT_LAYERS, DEFAULT_HISTOGRAM_LAYERS, DEFAULT_STYLE_LAYERS
from .color import match_color
from .fast import transfer_style_fast
from .engine import Callback, SynthesisProgress
from .gatys import synthesize_texture, transfer_style
from .memory import available_memory, estimate_memory
from .style_swap import style_swap_transfer

__all__ = ["synthesize_texture", "transfer_style", "style_swap_transfer", "transfer_style_fast", "SynthesisProgress", "Callback",
           "estimate_memory", "available_memory", "match_color", "DEFAULT_STYLE_LAYERS", "DEFAULT_CONTENT_LAYERS",
           "DEFAULT_HISTOGRAM_LAYERS"]
