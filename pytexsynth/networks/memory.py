"""How much memory a feed-forward network needs at a size: measured on one tiny forward pass.

The networks here are fully convolutional with every scale a fixed fraction of the image, so
each activation's size is proportional to H x W: a forward pass at the network's smallest size
(with hooks on its leaf modules) gives the bytes per pixel, scaled to any size exactly.
"""

from __future__ import annotations

from typing import Callable, List, Tuple, Union

import torch
from torch import nn

from .texture import StylizationGenerator, TextureGenerator

__all__ = ["activation_bytes", "generator_memory"]

# Calibration of the inference estimate against peak RSS (2-core AMD EPYC, OMP_NUM_THREADS=1,
# `pytexsynth generate` of a default TextureGenerator): 1.19 KB per output pixel measured between
# 1024 and 2048 px (1.82 and 5.56 GB), 3.1x the largest layer's input + output; and of training:
# `train-texture --batch-size 2` used 5.8 KB per sample pixel between 256 and 512 px (2.0 and
# 4.3 GB), of which the generator's share is at most 1.5x the sum of its activations.
INFERENCE_FACTOR = 3.5
TRAINING_FACTOR = 1.5


def activation_bytes(net: nn.Module, forward: Callable[[int, int], torch.Tensor], probe: Tuple[int, int],
                     size: Tuple[int, int]) -> Tuple[float, float]:
    """(sum of every leaf module's output, the largest leaf's input + output) in bytes for one
    image at ``size``, from ``forward(h, w)`` run at the small size ``probe`` (no gradients, eval
    mode, the module's mode restored), scaled by the pixel ratio."""
    outputs: List[int] = []
    largest = [0]

    def hook(module, inputs, output):
        n_in = sum(t.numel() * t.element_size() for t in inputs if isinstance(t, torch.Tensor))
        n_out = output.numel() * output.element_size() if isinstance(output, torch.Tensor) else 0
        outputs.append(n_out)
        largest[0] = max(largest[0], n_in + n_out)

    leaves = [m for m in net.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            forward(*probe)
    finally:
        net.train(was_training)
        for h in handles:
            h.remove()
    scale = size[0] * size[1] / (probe[0] * probe[1])
    return sum(outputs) * scale, largest[0] * scale


def generator_memory(net: Union[TextureGenerator, StylizationGenerator], n: int, size: Tuple[int, int], training: bool) -> int:
    """Bytes a Texture Networks generator needs to make (``training=False``) or train on
    (``training=True``, its own share; the loss network's is added by the trainer) ``n`` images
    of ``size`` (multiples of 2**K), besides its weights."""
    m = net.multiple
    device, dtype = net.to_rgb.weight.device, net.to_rgb.weight.dtype

    def forward(h: int, w: int) -> torch.Tensor:
        noise = net.sample_noise(1, (h, w), device=device)
        if isinstance(net, StylizationGenerator):
            return net(torch.zeros(1, 3, h, w, device=device, dtype=dtype), noise)
        return net(noise)

    total, largest = activation_bytes(net, forward, (2 * m, 2 * m), size)  # 2 x 2 at the coarsest: instance norm
    per_image = TRAINING_FACTOR * total if training else INFERENCE_FACTOR * largest
    return int(n * per_image)
