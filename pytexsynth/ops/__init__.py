"""Functional ops: typed wrappers over ``torch.ops.pytexsynth.*``, one module per op.

Each module holds an op's wrapper, its fake (meta) kernel and its autograd formula together
(the pytorch/extension-cpp pattern). A wrapper validates its arguments (so the error names the
argument whichever backend runs), then calls the compiled kernel, or the reference in
:mod:`pytexsynth.reference` where no kernel can take the input (:func:`pytexsynth.ops._ext.use_kernel`).

- :mod:`~pytexsynth.ops.adain`: ``adain``
- :mod:`~pytexsynth.ops.circular_pad`: ``circular_pad2d``
- :mod:`~pytexsynth.ops.gram`, :mod:`~pytexsynth.ops.gram_multi`: ``gram``, ``gram_loss``, ``gram_loss_multi``
- :mod:`~pytexsynth.ops.histogram` (statistics in :mod:`~pytexsynth.ops.histogram_stats`):
  ``histogram_stats``, ``histogram_match``, ``histogram_loss``, ``HistogramStats``
- :mod:`~pytexsynth.ops.style_swap`: ``style_swap``
- :mod:`~pytexsynth.ops.winograd`: ``winograd_weight``, ``winograd_conv3x3``
- :mod:`~pytexsynth.ops.fixed_order`: ``fixed_order_sum``, ``fixed_order_mean``, ``fixed_order_mse``
  (PyTorch reductions whose value does not depend on the CPU thread count)
- :mod:`~pytexsynth.ops.checks`: the argument checks they share; ``_ext``: loading the extension.
"""

from .adain import adain
from .circular_pad import circular_pad2d
from .fixed_order import fixed_order_mean, fixed_order_mse, fixed_order_sum
from .gram import gram, gram_loss
from .gram_multi import gram_loss_multi
from .histogram import HistogramStats, histogram_loss, histogram_match, histogram_stats
from .style_swap import style_swap
from .winograd import winograd_conv3x3, winograd_weight

__all__ = ["adain", "circular_pad2d", "gram", "gram_loss", "gram_loss_multi", "HistogramStats", "histogram_stats",
           "histogram_match", "histogram_loss", "style_swap", "winograd_weight", "winograd_conv3x3",
           "fixed_order_sum", "fixed_order_mean", "fixed_order_mse"]
