"""Per-term gradient balancing at a pyramid level's start (the engine's ``balance=True``)."""

from __future__ import annotations

from typing import List, Optional

import torch

from ..models.vgg import VGG19
from ..ops.fixed_order import fixed_order_mean
from .terms import Term
from .tiled import TiledLoss

__all__ = ["balance_scales"]


def balance_scales(terms: List[Term], x: torch.Tensor, vgg: VGG19, layers, balance: bool,
                   gen: torch.Generator, tiled: Optional[TiledLoss] = None,
                   checkpoint: bool = False) -> List[torch.Tensor]:
    """Per-term scales: weight / mean|d term / d image| at the level's start (no host sync in the
    loop; one per term per level here), the gradients computed as the level will (``tiled``,
    ``checkpoint``). Without ``balance`` the weights themselves."""
    if not balance:
        return [torch.tensor(t.weight, device=x.device) for t in terms]
    norms = _grad_norms(terms, x, vgg, layers, tiled, checkpoint)
    _require_finite(terms, norms, x)
    # A term with no gradient at the start (content loss when starting from the content image)
    # is measured at a nearby point instead.
    noise = torch.randn(x.shape, generator=gen, device="cpu").to(x.device) * 0.1
    flat = [i for i, (t, n) in enumerate(zip(terms, norms)) if t.weight != 0 and bool(n < 1e-12)]
    if flat:
        again = _grad_norms([terms[i] for i in flat], x.detach() + noise, vgg, layers, tiled, checkpoint)
        _require_finite([terms[i] for i in flat], again, x)
        norms = norms.clone()
        norms[flat] = again
    return [torch.zeros((), device=x.device) if t.weight == 0 else t.weight / norm.clamp_min(1e-20)
            for t, norm in zip(terms, norms)]


def _grad_norms(terms: List[Term], point: torch.Tensor, vgg: VGG19, layers, tiled: Optional[TiledLoss],
                checkpoint: bool) -> torch.Tensor:
    """mean |d term / d image| of each term at ``point`` (0 for a term that does not depend on it)."""
    if tiled is not None:
        one = torch.ones((), device=point.device)
        return torch.stack([fixed_order_mean(tiled(point.detach(), [t], [one])[2].abs()) if t.weight != 0
                            else torch.zeros((), device=point.device) for t in terms])
    probe = point.detach().clone().requires_grad_(True)
    feats = vgg(probe, layers, checkpoint=True) if checkpoint else vgg(probe, layers)
    return torch.stack([_grad_norm(t, feats, probe) for t in terms])


def _require_finite(terms: List[Term], norms: torch.Tensor, x: torch.Tensor) -> None:
    """FloatingPointError naming the terms whose gradient norm is NaN or infinite (an infinite
    one would silently give its term a scale of 0). One wait for the device."""
    if not bool(torch.isfinite(norms).all()):
        names = [t.name for t, n in zip(terms, norms) if not bool(torch.isfinite(n))]
        raise FloatingPointError(f"synthesis: the {', '.join(names)} term's gradient is not finite at "
                                 f"{x.shape[-1]}x{x.shape[-2]} px; check that the images are finite")


def _grad_norm(term: Term, feats, probe: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(term.fn(feats, probe), probe, retain_graph=True, allow_unused=True)
    if g is not None:
        return fixed_order_mean(g.abs())
    return torch.zeros((), device=probe.device)
