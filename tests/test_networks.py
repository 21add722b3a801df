"""Texture Networks generators: shapes, periodicity, determinism, save/load, bad input."""

from __future__ import annotations

import pytest
import torch

import pytexsynth
from pytexsynth.networks import StylizationGenerator, TextureGenerator, load_model, save_model


pytestmark = pytest.mark.usefixtures("one_thread")


def _roll_noise(noise, dy, dx):
    """Rolls z_i by (dy, dx) / 2^i: the same shift of the underlying torus at every scale."""
    out = []
    for i, z in enumerate(noise):
        assert dy % 2 ** i == 0 and dx % 2 ** i == 0
        out.append(torch.roll(z, (dy >> i, dx >> i), dims=(2, 3)))
    return out


def _net(cls=TextureGenerator, **kw):
    """A generator whose eval-mode output varies (fresh BN running stats make it nearly flat):
    running statistics accumulated over a few noise batches, so eval mode normalises properly."""
    g = cls(**kw)
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average
    g.train()
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for _ in range(3):
            if cls is TextureGenerator:
                g(g.sample_noise(2, 2 ** g.scales * 2, gen))
            else:
                g(torch.rand(2, 3, 2 ** g.scales * 2, 2 ** g.scales * 2, generator=gen), generator=gen)
    g.eval()
    return g


@pytest.mark.parametrize("norm", ["batch", "instance"])
@pytest.mark.parametrize("size", [(32, 32), (16, 48)])
def test_shapes_and_range(norm, size):
    g = TextureGenerator(scales=3, channels=4, norm=norm)
    noise = g.sample_noise(2, size)
    assert [tuple(z.shape) for z in noise] == [(2, 3, size[0] >> i, size[1] >> i) for i in range(4)]
    assert all(0 <= z.min() and z.max() < 1 for z in noise)  # uniform in [0, 1)
    y = g(noise)
    assert y.shape == (2, 3, *size)
    assert 0 <= y.min() and y.max() <= 1
    y.mean().backward()  # differentiable end to end (through the circular pad op)
    assert all(p.grad is not None for p in g.parameters())


def test_default_architecture_is_the_papers():
    g = TextureGenerator()
    assert g.scales == 5 and g.multiple == 32 and len(g.sample_noise(1, 64)) == 6
    assert StylizationGenerator().scales == 6
    convs = [m for m in g.modules() if isinstance(m, torch.nn.Conv2d)]
    # every spatial conv is circular; only 1x1 convs (which need no padding) may be plain
    assert all(isinstance(m, pytexsynth.nn.CircularConv2d) or m.kernel_size == (1, 1) for m in convs)
    assert sum(isinstance(m, pytexsynth.nn.CircularConv2d) for m in convs) == 3 * (6 + 5)
    assert isinstance(g.blocks[0][1], torch.nn.BatchNorm2d)
    assert isinstance(TextureGenerator(norm="instance").blocks[0][1], torch.nn.InstanceNorm2d)


@pytest.mark.parametrize("norm", ["batch", "instance"])
@pytest.mark.parametrize("shift", [(8, 0), (0, 16), (8, 24), (-8, 40)])
def test_rolling_noise_by_whole_cells_rolls_output(norm, shift):
    # With K = 3 the coarsest noise cell is 2^3 = 8 output pixels: rolling every z_i by shift / 2^i
    # is a whole number of cells at every scale; circular convs and nearest upsampling commute
    # with it, and batch/instance statistics are invariant to it, so the output rolls by shift.
    g = TextureGenerator(scales=3, channels=4, norm=norm)
    g.train()  # batch statistics too (they are sums over a rolled tensor)
    noise = g.sample_noise(2, (32, 48), torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = g(noise)
        y_rolled = g(_roll_noise(noise, *shift))
    torch.testing.assert_close(y_rolled, torch.roll(y, shift, dims=(2, 3)), rtol=0, atol=1e-6)
    assert not torch.allclose(y_rolled, y, atol=1e-3)  # the roll is not trivially invisible


def test_rolling_only_part_of_the_noise_does_not_roll_output():
    # The control: rolling the finest noise alone by a whole coarse cell is not a roll of the torus.
    g = _net(scales=3, channels=4)
    noise = g.sample_noise(1, 32, torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = g(noise)
        partial = [torch.roll(noise[0], (8, 0), dims=(2, 3))] + noise[1:]
        assert not torch.allclose(g(partial), torch.roll(y, (8, 0), dims=(2, 3)), atol=1e-3)


def test_samples_tile_seamlessly():
    # A 2x2 tiling of every noise tensor gives the 2x2 tiling of the sample: the sample is one
    # period of a periodic texture, so it tiles without a seam.
    g = _net(scales=3, channels=4)
    noise = g.sample_noise(1, 32, torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = g(noise)
        assert y.std() > 0.02  # a real texture, not a flat image
        big = g([z.repeat(1, 1, 2, 2) for z in noise])
    torch.testing.assert_close(big, y.repeat(1, 1, 2, 2), rtol=0, atol=1e-6)


def test_generate_is_seeded_and_eval_mode():
    g = TextureGenerator(scales=2, channels=4)
    g.train()
    a, b = g.generate(2, 16, seed=7), g.generate(2, 16, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, g.generate(2, 16, seed=8))
    assert g.training  # restored
    assert g.generate(1, (8, 12), seed=0).shape == (1, 3, 8, 12)


def test_stylization_generator():
    g = StylizationGenerator(scales=3, channels=4)
    content = torch.rand(2, 3, 24, 40)
    y = g(content, generator=torch.Generator().manual_seed(0))
    assert y.shape == content.shape
    # the content reaches the output
    g = _net(StylizationGenerator, scales=3, channels=4)
    with torch.no_grad():
        noise = g.sample_noise(2, (24, 40), torch.Generator().manual_seed(0))
        assert not torch.allclose(g(content, noise), g(torch.rand_like(content), noise), atol=1e-4)
    # any size: padded to a multiple of 8 and cropped back; a single image keeps its rank
    assert g.stylize(torch.rand(3, 21, 30)).shape == (3, 21, 30)
    assert g.stylize(torch.rand(1, 3, 5, 6)).shape == (1, 3, 5, 6)
    assert torch.equal(g.stylize(content, seed=1), g.stylize(content, seed=1))
    assert StylizationGenerator(scales=2, noise_channels=0).stylize(torch.rand(3, 8, 8)).shape == (3, 8, 8)


@pytest.mark.parametrize("cls", [TextureGenerator, StylizationGenerator])
def test_save_and_load_model(tmp_path, cls):
    g = cls(scales=2, channels=5, norm="instance", leaky_slope=0.2)
    with torch.no_grad():
        for p in g.parameters():
            p.add_(torch.randn_like(p))
    path = tmp_path / "net.pt"
    save_model(g, path, exemplar="bricks.png")
    loaded = pytexsynth.load_model(path)  # no arguments: the file records the architecture
    assert type(loaded) is cls and loaded.config == g.config and not loaded.training
    for (k, v), (k2, v2) in zip(g.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    if cls is TextureGenerator:
        assert torch.equal(loaded.generate(1, 8, seed=3), g.generate(1, 8, seed=3))
    else:
        x = torch.rand(1, 3, 8, 8)
        assert torch.equal(loaded.stylize(x), g.stylize(x))
    assert torch.load(path, weights_only=True)["metadata"] == {"exemplar": "bricks.png"}
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temporary behind


def test_size_errors():
    g = TextureGenerator(scales=5)
    with pytest.raises(ValueError, match=r"output height 100 is not a positive multiple of 2\*\*5 = 32.*96 or 128"):
        g.generate(1, 100)
    with pytest.raises(ValueError, match=r"output width 40 is not a positive multiple"):
        g.generate(1, (64, 40))
    with pytest.raises(ValueError, match="not a positive multiple"):
        g.generate(1, 0)
    with pytest.raises(TypeError, match="size must be an int or a pair"):
        g.generate(1, 64.0)
    with pytest.raises(TypeError, match="pair of ints"):
        g.generate(1, (64, 64, 64))
    with pytest.raises(ValueError, match="n must be a positive int"):
        g.generate(0, 64)
    with pytest.raises(ValueError, match="noise must be a list of 6 tensors"):
        g(g.sample_noise(1, 32)[:5])
    noise = g.sample_noise(1, 32)
    noise[2] = noise[2][:, :2]
    with pytest.raises(ValueError, match=r"noise\[2\] must have shape \(1, 3, 8, 8\)"):
        g(noise)
    s = StylizationGenerator(scales=3)
    with pytest.raises(ValueError, match="output height 20 is not a positive multiple of 2\\*\\*3 = 8"):
        s(torch.rand(1, 3, 20, 16))
    with pytest.raises(ValueError, match=r"content must be an \(N, 3, H, W\) tensor"):
        s(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="stylize: image must be"):
        s.stylize(torch.rand(16, 16))


def test_constructor_errors():
    with pytest.raises(ValueError, match="norm must be one of"):
        TextureGenerator(norm="layer")
    with pytest.raises(ValueError, match="channels must be >= 1"):
        TextureGenerator(channels=0)
    with pytest.raises(TypeError, match="scales must be an int"):
        TextureGenerator(scales=2.0)
    with pytest.raises(ValueError, match="noise_channels must be >= 1"):
        TextureGenerator(noise_channels=0)
    with pytest.raises(ValueError, match="output must be"):
        TextureGenerator(output="tanh")


def test_instance_norm_training_size_error():
    """Instance norm needs a coarsest scale of 2 x 2 or more in training: a clear error, before any work."""
    g = TextureGenerator(scales=3, channels=4, norm="instance")
    assert g.check_training_size(16) == (16, 16)
    with pytest.raises(ValueError, match="training size 8 makes the coarsest scale 1 pixel wide.*at least 16"):
        g.check_training_size(8)
    assert TextureGenerator(scales=3, channels=4, norm="batch").check_training_size(8) == (8, 8)
    with pytest.raises(ValueError, match=r"training size \(8, 32\) makes the coarsest scale 1 pixel wide"):
        pytexsynth.train_texture_network(torch.rand(3, 16, 16), size=(8, 32), model=g, steps=1, progress=False)


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_model(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"weights": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not a pytexsynth model"):
        load_model(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a pytexsynth model"):
        load_model(junk)
    unknown = tmp_path / "unknown.pt"
    torch.save({"format": "pytexsynth-model", "architecture": {"class": "Nope", "kwargs": {}}, "state_dict": {}}, unknown)
    with pytest.raises(ValueError, match="unknown network class 'Nope'"):
        load_model(unknown)


# ---- CLI: train-texture, train-stylizer, generate, stylize --model ------------------------------
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from pytexsynth.cli import main  # noqa: E402


def _cli(*argv):
    """Runs the `pytexsynth` command line; returns its exit status (user errors: 1, printed on
    stderr; usage errors raise SystemExit(2) after printing the command's usage)."""
    return main([str(a) for a in argv])


def _png(path, h, w, seed=0):
    arr = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


def test_cli_generate_and_stylize_model(tmp_path, capsys):
    tex, sty = tmp_path / "tex.pt", tmp_path / "sty.pt"
    save_model(_net(scales=2, channels=4), tex)
    save_model(_net(StylizationGenerator, scales=2, channels=4), sty)
    assert _cli("generate", tex, "-o", tmp_path / "s.png", "-n", 2, "--size", "16x24", "--seed", 3) == 0
    a = np.asarray(Image.open(tmp_path / "s_0.png"))
    assert a.shape == (16, 24, 3) and (tmp_path / "s_1.png").exists()
    expected = pytexsynth.load_model(tex).generate(2, (16, 24), seed=3)[0]
    assert np.abs(a / 255.0 - expected.permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-6
    capsys.readouterr()
    assert _cli("generate", tex, "-o", tmp_path / "s.png", "-n", 2, "--size", 16) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    assert _cli("generate", tex, "-o", tmp_path / "t.png", "--size", 18) == 1
    assert "not a positive multiple of 2**2 = 4" in capsys.readouterr().err
    assert _cli("generate", sty, "-o", tmp_path / "t.png", "--size", 16) == 1
    assert "not a texture generator" in capsys.readouterr().err

    photo = _png(tmp_path / "photo.png", 21, 30)
    assert _cli("stylize", photo, "--model", sty, "-o", tmp_path / "out.png") == 0
    assert np.asarray(Image.open(tmp_path / "out.png")).shape[:2] == (21, 30)
    capsys.readouterr()
    assert _cli("stylize", photo, "--model", tex, "-o", tmp_path / "out2.png") == 1
    assert "not a stylisation network" in capsys.readouterr().err
    assert _cli("stylize", photo, "--model", tmp_path / "missing.pt", "-o", tmp_path / "out3.png") == 1
    assert "no such file" in capsys.readouterr().err
    # the optimisation command keeps its STYLE arguments, exclusive with --model
    with pytest.raises(SystemExit):
        _cli("stylize", photo, "-o", tmp_path / "out4.png")
    assert "STYLE (or --model)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _cli("stylize", photo, photo, "--model", sty, "-o", tmp_path / "out5.png")
    assert "not both" in capsys.readouterr().err


def test_cli_train_texture_and_stylizer(tmp_path, capsys):
    ex = _png(tmp_path / "ex.png", 32, 32)
    model = tmp_path / "m.pt"
    tiny = ["--size", 16, "--scales", 2, "--channels", 4, "--steps", 2, "--batch-size", 1, "--quiet", "--device", "cpu"]
    assert _cli("train-texture", ex, "-o", model, *tiny) == 0
    assert isinstance(pytexsynth.load_model(model), TextureGenerator)
    assert (tmp_path / "m.pt.ckpt").exists()  # checkpoint beside it, for --resume
    capsys.readouterr()
    assert _cli("train-texture", ex, "-o", model, *tiny) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    more = ["--size", 16, "--scales", 2, "--channels", 4, "--steps", 3, "--batch-size", 1, "--quiet", "--device", "cpu"]
    assert _cli("train-texture", ex, "-o", model, "--resume", *more) == 0
    assert torch.load(model, weights_only=True)["metadata"]["steps"] == 3

    photos = tmp_path / "photos"
    photos.mkdir()
    _png(photos / "a.png", 20, 24)
    (photos / "b.png").write_bytes(b"broken")
    with pytest.warns(RuntimeWarning, match="skipped 1 unreadable"):
        assert _cli("train-stylizer", ex, photos, "-o", tmp_path / "s.pt", *tiny) == 0
    assert "1 unreadable image(s) skipped" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _cli("train-stylizer", ex, empty, "-o", tmp_path / "s2.pt", *tiny) == 1
    assert "holds no readable images" in capsys.readouterr().err
