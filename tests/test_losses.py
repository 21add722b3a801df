"""Loss modules against direct formulas; style blending; masks route regions; total variation."""

from __future__ import annotations

import pytest
import torch

from pytexsynth import ops
from pytexsynth.losses import (ContentLoss, GramStyleLoss, HistogramStyleLoss, TotalVariationLoss, label_masks,
                               total_variation)


def _gram(f):  # direct formula, float64
    b, c, h, w = f.shape
    f = f.double().reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


def _feats(seed, shapes=((4, 6, 5), (6, 3, 3))):
    g = torch.Generator().manual_seed(seed)
    return {f"l{i}": torch.rand(1, c, h, w, generator=g) + 0.1 for i, (c, h, w) in enumerate(shapes)}


def test_content_loss_formula():
    t, x = _feats(0), _feats(1)
    loss = ContentLoss(t, layer_weights=[2.0, 0.5])(x)
    ref = 2.0 * ((x["l0"] - t["l0"]) ** 2).mean() + 0.5 * ((x["l1"] - t["l1"]) ** 2).mean()
    torch.testing.assert_close(loss, ref.float())


def test_gram_loss_formula_explicit_and_auto_weights():
    s, x = _feats(0), _feats(1)
    loss = GramStyleLoss([s], layer_weights=[3.0, 0.25])(x)
    ref = sum(w * ((_gram(x[n]) - _gram(s[n])) ** 2).mean() for n, w in (("l0", 3.0), ("l1", 0.25)))
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-7)
    auto = GramStyleLoss([s])(x)
    ref = sum(((_gram(x[n]) - _gram(s[n])) ** 2).mean() / (2 * (_gram(s[n]) ** 2).mean()) for n in ("l0", "l1"))
    torch.testing.assert_close(auto.double(), ref, rtol=1e-5, atol=1e-7)


def test_blended_styles_have_the_gradient_of_the_weighted_sum():
    s1, s2 = _feats(0), _feats(2)
    x = {k: v.clone().requires_grad_(True) for k, v in _feats(1).items()}
    GramStyleLoss([s1, s2], blend=[3.0, 1.0], layer_weights=1.0)(x).backward()
    g_blend = [x[k].grad.clone() for k in x]
    for v in x.values():
        v.grad = None
    (0.75 * GramStyleLoss([s1], layer_weights=1.0)(x) + 0.25 * GramStyleLoss([s2], layer_weights=1.0)(x)).backward()
    for a, k in zip(g_blend, x):
        torch.testing.assert_close(a, x[k].grad, rtol=1e-4, atol=1e-6)


def test_masked_gram_loss_formula():
    s, x = _feats(0, ((3, 4, 6),)), _feats(1, ((3, 4, 6),))
    lab_out = torch.zeros(4, 6, dtype=torch.long)
    lab_out[:, 4:] = 1
    lab_sty = torch.zeros(4, 6, dtype=torch.long)
    lab_sty[:2] = 1
    mo, ms = label_masks(lab_out, 2), label_masks(lab_sty, 2)
    loss = GramStyleLoss([s], layer_weights=1.0, output_masks=mo, style_masks=[ms])(x)

    def region_gram(f, m):  # mean over the region's pixels of f f^T
        f = f[0].double().reshape(f.shape[1], -1)[:, m.reshape(-1).bool()]
        return f @ f.T / f.shape[1]

    ref = sum(((region_gram(x["l0"], mo[0, k]) - region_gram(s["l0"], ms[0, k])) ** 2).mean() for k in range(2))
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-7)


def test_masks_route_regions():
    # Style: region 0 (left) is type A, region 1 (right) is type B. An output with B on the left and
    # A on the right matches only when its labels say so.
    g = torch.Generator().manual_seed(3)
    a = torch.rand(1, 4, 6, 3, generator=g)
    b = 3 * torch.rand(1, 4, 6, 3, generator=g) + 1
    style = {"l": torch.cat([a, b], dim=3)}
    out = {"l": torch.cat([b, a], dim=3)}
    halves = torch.zeros(6, 6, dtype=torch.long)
    halves[:, 3:] = 1
    swapped = 1 - halves
    right = GramStyleLoss([style], output_masks=label_masks(swapped, 2), style_masks=[label_masks(halves, 2)])(out)
    wrong = GramStyleLoss([style], output_masks=label_masks(halves, 2), style_masks=[label_masks(halves, 2)])(out)
    assert float(right) < 1e-6 < float(wrong)
    assert float(wrong) > 1e-2


def test_histogram_style_loss_formula():
    s, x = _feats(0), _feats(1)
    loss = HistogramStyleLoss([s], layer_weights=[1.5, 0.5], bins=64)(x)
    ref = 0.0
    for n, w in (("l0", 1.5), ("l1", 0.5)):
        r = ops.histogram_match(x[n], ops.histogram_stats(s[n], bins=64))
        ref = ref + w * ((x[n] - r) ** 2).mean()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-7)
    assert float(HistogramStyleLoss([s], bins=64)(s)) < 1e-3 * float(HistogramStyleLoss([s], bins=64)(x))


def test_masked_histogram_loss_formula():
    # direct formula: each output region's cells histogram-matched to the same label's style cells,
    # weighted by the region's share of the cells; a layer at half resolution uses majority labels
    s = {"l0": torch.rand(1, 3, 8, 8) + 0.1, "l1": torch.rand(1, 5, 4, 4)}
    x = {"l0": torch.rand(1, 3, 8, 8) + 0.1, "l1": torch.rand(1, 5, 4, 4)}
    lab_out = torch.zeros(8, 8, dtype=torch.long)
    lab_out[:, 6:] = 1
    lab_sty = torch.zeros(8, 8, dtype=torch.long)
    lab_sty[:2] = 1
    mo, ms = label_masks(lab_out, 2), label_masks(lab_sty, 2)
    loss = HistogramStyleLoss([s], layer_weights=[2.0, 0.5], bins=32, output_masks=mo, style_masks=[ms])(x)
    ref = 0.0
    for n, w, step in (("l0", 2.0, 1), ("l1", 0.5, 2)):
        lo, ls = lab_out[::step, ::step].reshape(-1), lab_sty[::step, ::step].reshape(-1)  # 2x2 cells: uniform here
        fx, fs = x[n][0].reshape(x[n].shape[1], -1), s[n][0].reshape(s[n].shape[1], -1)
        for k in range(2):
            xk, sk = fx[:, lo == k][None, :, None], fs[:, ls == k][None, :, None]
            r = ops.histogram_match(xk, ops.histogram_stats(sk, bins=32))
            ref = ref + w * (lo == k).float().mean() * ((xk - r) ** 2).mean()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-7)
    # one label covering everything is the unmasked loss
    one = label_masks(torch.zeros(8, 8, dtype=torch.long), 1)
    torch.testing.assert_close(HistogramStyleLoss([s], bins=32, output_masks=one, style_masks=[one])(x),
                               HistogramStyleLoss([s], bins=32)(x), rtol=1e-5, atol=1e-7)


def test_masks_route_histogram_regions():
    # Same set-up as for the Gram loss: style A left, B right (different value distributions);
    # the output has B on the left and A on the right. Gradients flow only where labels say.
    g = torch.Generator().manual_seed(3)
    a = torch.rand(1, 4, 6, 3, generator=g)
    b = 3 * torch.rand(1, 4, 6, 3, generator=g) + 1
    style = {"l": torch.cat([a, b], dim=3)}
    out = {"l": torch.cat([b, a], dim=3).requires_grad_(True)}
    halves = torch.zeros(6, 6, dtype=torch.long)
    halves[:, 3:] = 1
    swapped = 1 - halves
    right = HistogramStyleLoss([style], output_masks=label_masks(swapped, 2), style_masks=[label_masks(halves, 2)])
    wrong = HistogramStyleLoss([style], output_masks=label_masks(halves, 2), style_masks=[label_masks(halves, 2)])
    assert float(right(out).detach()) < 1e-3 * float(wrong(out).detach())
    assert float(wrong(out).detach()) > 0.1
    # an output region whose label the style lacks adds nothing
    three = label_masks(torch.full((6, 6), 2, dtype=torch.long), 3)
    lone = HistogramStyleLoss([style], output_masks=three, style_masks=[label_masks(halves, 3)])(out)
    assert float(lone.detach()) == 0.0
    lone.backward()
    assert out["l"].grad is not None and float(out["l"].grad.abs().sum()) == 0.0


def test_total_variation_formula_and_circular():
    x = torch.rand(2, 3, 5, 7)
    ref = ((x[..., 1:] - x[..., :-1]) ** 2).mean() + ((x[..., 1:, :] - x[..., :-1, :]) ** 2).mean()
    torch.testing.assert_close(total_variation(x), ref)
    ramp = torch.linspace(0, 1, 8).view(1, 1, 1, 8).expand(1, 3, 8, 8)
    # a ramp is smooth inside but jumps at the wrap-around seam: only the periodic TV sees it
    assert float(TotalVariationLoss(circular=True)(ramp)) > 5 * float(TotalVariationLoss()(ramp))
    periodic = torch.sin(torch.arange(8) * 2 * torch.pi / 8).view(1, 1, 1, 8).expand(1, 3, 8, 8)
    dx = periodic - periodic.roll(1, 3)
    torch.testing.assert_close(total_variation(periodic, circular=True), (dx ** 2).mean())


def test_bad_arguments():
    s = _feats(0)
    with pytest.raises(ValueError, match="2 blend weights for 1 styles"):
        GramStyleLoss([s], blend=[1, 2])
    with pytest.raises(ValueError, match="3 layer_weights for 2 layers"):
        GramStyleLoss([s], layer_weights=[1, 2, 3])
    with pytest.raises(ValueError, match="one style mask per style"):
        GramStyleLoss([s], output_masks=torch.ones(1, 1, 4, 4))
    with pytest.raises(TypeError, match="integer tensor"):
        label_masks(torch.rand(4, 4))
    with pytest.raises(ValueError, match="at least one style"):
        HistogramStyleLoss([])
