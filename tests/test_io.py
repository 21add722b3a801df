"""Image IO: the modes users' files come in, clear errors, atomic writes that refuse to overwrite."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from pytexsynth.io import ImageLoadError, load_image, save_image


def _rgb(h=5, w=7):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb8_roundtrip(tmp_path):
    a = _rgb()
    Image.fromarray(a).save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png")
    assert x.shape == (1, 3, 5, 7) and x.dtype == torch.float32
    torch.testing.assert_close(x[0].permute(1, 2, 0) * 255, torch.from_numpy(a).float())
    save_image(x, tmp_path / "b.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), a)


def test_grayscale_16bit(tmp_path):
    a = np.array([[0, 65535, 32768]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    x = load_image(tmp_path / "g16.png")
    assert x.shape == (1, 3, 1, 3)
    torch.testing.assert_close(x[0, 1, 0], torch.tensor([0.0, 1.0, 32768 / 65535]))
    assert torch.equal(x[0, 0], x[0, 2])


def test_grayscale_8bit_and_palette(tmp_path):
    Image.fromarray(np.array([[0, 255]], dtype=np.uint8)).save(tmp_path / "l.png")
    torch.testing.assert_close(load_image(tmp_path / "l.png")[0, :, 0, 1], torch.ones(3))
    p = Image.fromarray(_rgb()).convert("P", palette=Image.ADAPTIVE, colors=8)
    p.save(tmp_path / "p.png")
    x = load_image(tmp_path / "p.png")
    ref = np.asarray(p.convert("RGB"), dtype=np.float32) / 255
    torch.testing.assert_close(x[0].permute(1, 2, 0), torch.from_numpy(ref))


def test_rgba_composited_over_white(tmp_path):
    a = np.zeros((1, 2, 4), dtype=np.uint8)
    a[0, 0] = (255, 0, 0, 255)  # opaque red
    a[0, 1] = (0, 0, 0, 0)  # transparent -> white
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png")
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(x[0, :, 0, 1], torch.ones(3))


def test_resize_on_load(tmp_path):
    Image.fromarray(_rgb(20, 40)).save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png", size=10).shape == (1, 3, 5, 10)
    assert load_image(tmp_path / "a.png", size=(7, 9)).shape == (1, 3, 7, 9)


def test_unreadable_files_named(tmp_path):
    with pytest.raises(ImageLoadError, match="nope.png.*no such file"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    with pytest.raises(ImageLoadError, match="junk.png"):
        load_image(tmp_path / "junk.png")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


def test_save_refuses_overwrite_and_force(tmp_path):
    out = tmp_path / "o.png"
    save_image(torch.zeros(1, 3, 2, 2), out)
    with pytest.raises(FileExistsError, match="force"):
        save_image(torch.ones(1, 3, 2, 2), out)
    assert np.asarray(Image.open(out)).max() == 0
    save_image(torch.ones(1, 3, 2, 2), out, force=True)
    assert np.asarray(Image.open(out)).min() == 255


def test_save_is_atomic(tmp_path, monkeypatch):
    out = tmp_path / "o.png"
    save_image(torch.zeros(1, 3, 2, 2), out)

    def failing_save(self, fp, *a, **k):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(torch.ones(1, 3, 2, 2), out, force=True)
    monkeypatch.undo()
    assert np.asarray(Image.open(out)).max() == 0  # the old file is intact
    assert os.listdir(tmp_path) == ["o.png"]  # no temp file left behind


def test_save_16bit_and_bad_args(tmp_path):
    save_image(torch.full((1, 1, 2, 2), 0.5), tmp_path / "g.png", bits=16)
    assert np.asarray(Image.open(tmp_path / "g.png")).max() == 32768
    with pytest.raises(ValueError, match="unknown image extension"):
        save_image(torch.zeros(1, 3, 2, 2), tmp_path / "x.notanimage")
    with pytest.raises(ValueError, match="one image"):
        save_image(torch.zeros(2, 3, 2, 2), tmp_path / "y.png")


# ---- 16-bit colour (issue 18 item 15: Pillow cuts 16-bit RGB(A) to 8 bits) -------------------

from png_files import png16  # noqa: E402  (tests/ is on the path: the test helpers)


def _samples16(h, w, c, seed=0):
    return np.random.default_rng(seed).integers(0, 65536, (h, w, c), dtype=np.uint16)


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("filters", [(0,), (1,), (2,), (3,), (4,), (4, 3, 2, 1, 0)])
def test_16bit_rgb_keeps_all_16_bits(tmp_path, filters, interlace):
    a = _samples16(13, 11, 3)
    (tmp_path / "c.png").write_bytes(png16(a, filters, interlace))
    x = load_image(tmp_path / "c.png")
    assert x.shape == (1, 3, 13, 11) and x.dtype == torch.float32
    got = torch.round(x[0].permute(1, 2, 0) * 65535).to(torch.int64).numpy()
    np.testing.assert_array_equal(got, a.astype(np.int64))  # every sample to the last bit


@pytest.mark.parametrize("channels", [2, 4])
@pytest.mark.parametrize("interlace", [False, True])
def test_16bit_alpha_is_composited_over_white_at_16_bits(tmp_path, channels, interlace):
    a = _samples16(9, 10, channels, seed=channels)
    (tmp_path / "a.png").write_bytes(png16(a, interlace=interlace))
    x = load_image(tmp_path / "a.png")[0].permute(1, 2, 0).double().numpy()
    s = a.astype(np.float64) / 65535
    colour = np.repeat(s[..., :1], 3, axis=2) if channels == 2 else s[..., :3]
    np.testing.assert_allclose(x, colour * s[..., -1:] + 1 - s[..., -1:], atol=2e-7)


def test_16bit_colour_key_is_white_and_16bit_files_are_checked(tmp_path):
    a = _samples16(4, 5, 3)
    a[1, 2] = (1000, 2000, 3000)
    (tmp_path / "k.png").write_bytes(png16(a, colour_key=(1000, 2000, 3000)))
    x = load_image(tmp_path / "k.png")
    assert torch.equal(x[0, :, 1, 2], torch.ones(3))
    assert not torch.equal(x[0, :, 0, 0], torch.ones(3))
    data = png16(_samples16(8, 8, 3))
    for name, bad in (("truncated", data[:-30]), ("flipped", data[:60] + bytes([data[60] ^ 0xFF]) + data[61:])):
        (tmp_path / f"{name}.png").write_bytes(bad)
        with pytest.raises(ImageLoadError, match=f"{name}.png"):
            load_image(tmp_path / f"{name}.png")


def test_save_16bit_keeps_colour_and_every_bit(tmp_path):
    a = _samples16(6, 7, 3)
    x = torch.from_numpy(a.astype(np.float32) / 65535).permute(2, 0, 1)[None]
    save_image(x, tmp_path / "o.png", bits=16)
    with Image.open(tmp_path / "o.png") as img:
        assert img.mode == "RGB" and img.size == (7, 6)
    y = load_image(tmp_path / "o.png")
    np.testing.assert_array_equal(torch.round(y[0].permute(1, 2, 0) * 65535).to(torch.int64).numpy(), a)
    with pytest.raises(ValueError, match="needs a .png path"):
        save_image(x, tmp_path / "o.jpg", bits=16)


def test_cli_writes_16bit_colour(tmp_path, capsys):
    from pytexsynth.cli import main

    a = _samples16(24, 24, 3)
    (tmp_path / "ex.png").write_bytes(png16(a))
    assert main(["texture", str(tmp_path / "ex.png"), "-o", str(tmp_path / "t.png"), "--size", "24",
                 "--iterations", "2", "--no-pyramid", "--bits", "16", "--quiet"]) == 0
    y = load_image(tmp_path / "t.png")
    words = torch.round(y * 65535).to(torch.int64)
    assert bool((words % 257 != 0).any())  # not 8-bit values scaled up
    assert not torch.equal(y[0, 0], y[0, 1])  # colour, not grey
    assert main(["texture", str(tmp_path / "ex.png"), "-o", str(tmp_path / "t.jpg"), "--bits", "16"]) == 1
    assert "--bits 16 writes PNG only" in capsys.readouterr().err
