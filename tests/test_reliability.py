"""Nothing lost, nothing silently wrong: the regressions of issue 18 fixed so far, one test each
(each failed before its fix)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

import pytexsynth
from pytexsynth.cli import main
from pytexsynth.io import save_image
from pytexsynth.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--size", "16", "--scales", "2", "--channels", "4", "--batch-size", "1", "--quiet", "--device", "cpu"]


@pytest.fixture
def exemplar(tmp_path):
    path = tmp_path / "ex.png"
    Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)).save(path)
    return path


def _steps(model):
    return torch.load(model, weights_only=True)["metadata"]["steps"]


def test_resume_without_a_checkpoint_keeps_the_finished_model(exemplar, tmp_path, capsys):
    model = tmp_path / "F.pt"
    assert main(["train-texture", str(exemplar), "-o", str(model), *TINY, "--steps", "4"]) == 0
    os.remove(str(model) + ".ckpt")
    before = model.read_bytes()
    assert main(["train-texture", str(exemplar), "-o", str(model), *TINY, "--steps", "3", "--resume"]) == 1
    assert "no checkpoint" in capsys.readouterr().err and model.read_bytes() == before and _steps(model) == 4


def test_an_existing_file_at_the_checkpoint_path_is_never_overwritten(exemplar, tmp_path, capsys):
    image = exemplar.read_bytes()
    argv = ["train-texture", str(exemplar), "-o", str(tmp_path / "G.pt"), "--checkpoint", str(exemplar), *TINY,
            "--steps", "2"]
    assert main(argv) == 1
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 1  # even forced: the file is not a checkpoint
    assert "pytexsynth training checkpoint; refusing to overwrite it" in capsys.readouterr().err
    assert exemplar.read_bytes() == image and not (tmp_path / "G.pt").exists()


def _tiny_run(**kw):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)

    def loss_fn(m, batch):
        return ((m(batch) - 1.0) ** 2).mean()

    return train(model, loss_fn, lambda gen, step: torch.rand(4, 3, generator=gen), progress=False, device="cpu", **kw)


def test_resuming_with_fewer_steps_than_the_checkpoint_is_refused(tmp_path):
    ck = tmp_path / "run.ckpt"
    _tiny_run(steps=6, checkpoint=ck)
    before = ck.read_bytes()
    with pytest.raises(ValueError, match="at step 6, beyond steps=3"):
        _tiny_run(steps=3, checkpoint=ck, resume=True)
    assert ck.read_bytes() == before


def test_the_same_seed_trains_the_same_model(exemplar):
    kw = dict(size=16, steps=2, batch_size=1, scales=2, channels=4, progress=False, device="cpu", seed=3)
    a = pytexsynth.train_texture_network(str(exemplar), **kw).state_dict()
    torch.rand(5)  # the caller's RNG state does not matter
    b = pytexsynth.train_texture_network(str(exemplar), **kw).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = pytexsynth.train_texture_network(str(exemplar), **{**kw, "seed": 4}).state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_a_nan_weight_is_a_clear_error_and_writes_nothing(exemplar, tmp_path, capsys):
    out = tmp_path / "out.png"
    argv = ["texture", str(exemplar), "-o", str(out), "--size", "32", "--iterations", "2", "--no-pyramid", "--quiet",
            "--device", "cpu"]
    assert main([*argv, "--style-weight", "nan"]) == 1
    assert "style_weight must be a number >= 0 and finite" in capsys.readouterr().err and not out.exists()
    assert main(["stylize", str(exemplar), str(exemplar), str(exemplar), "-o", str(out), "--blend", "1", "nan",
                 *argv[4:]]) == 1
    assert "blend weights must be finite" in capsys.readouterr().err and not out.exists()
    with pytest.raises(ValueError, match="lr must be a finite number"):
        pytexsynth.synthesize_texture(torch.rand(1, 3, 32, 32), 32, iterations=2, lr=float("inf"), device="cpu")


def test_a_non_finite_image_stops_the_run(tmp_path):
    x = torch.rand(1, 3, 32, 32)
    x[0, 0, 3, 4] = float("nan")
    with pytest.raises(FloatingPointError, match="style term's gradient is not finite at 32x32 px"):
        pytexsynth.synthesize_texture(x, 32, iterations=2, pyramid=False, device="cpu")
    with pytest.raises(FloatingPointError, match="not finite"):
        pytexsynth.transfer_style(x, torch.rand(1, 3, 32, 32), 32, iterations=2, pyramid=False, device="cpu")


def test_save_image_refuses_non_finite_data(tmp_path):
    img = torch.rand(1, 3, 4, 4)
    img[0, 1, 2, 2] = float("inf")
    with pytest.raises(ValueError, match="1 NaN or infinite value"):
        save_image(img, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists() and not list(tmp_path.iterdir())


def test_atomic_writes_remove_what_killed_writers_left(tmp_path):
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    while True:
        try:
            os.kill(dead, 0)
            dead += 1
        except ProcessLookupError:
            break
        except PermissionError:
            dead += 1
    from pytexsynth.io import writer_tag  # how this process names its temporaries

    host = writer_tag().rsplit("-", 1)[0]
    stale = tmp_path / f".x.png.{host}-{dead}.abcd.tmp"
    live = tmp_path / f".x.png.{host}-{os.getppid()}.efgh.tmp"  # a live process's: not ours to remove
    remote = tmp_path / f".x.png.otherhost-{dead}.mnop.tmp"  # another host's: its pid means nothing here
    other = tmp_path / f".y.png.{host}-{dead}.ijkl.tmp"  # another file's
    for p in (stale, live, remote, other):
        p.write_bytes(b"partial")
    save_image(torch.rand(1, 3, 4, 4), tmp_path / "x.png")
    assert not stale.exists() and live.exists() and remote.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["x.png"]


@pytest.mark.parametrize("device", ["foo", "cuda:7", "mps", "meta"] + ([] if torch.cuda.is_available() else ["cuda"]))
@pytest.mark.parametrize("command", ["texture", "train-texture", "stylize-swap"])
def test_a_device_that_is_not_here_is_one_line(exemplar, tmp_path, capsys, device, command):
    out = str(tmp_path / ("o.pt" if command == "train-texture" else "o.png"))
    argv = {"texture": ["texture", str(exemplar), "-o", out, "--size", "32", "--quiet"],
            "train-texture": ["train-texture", str(exemplar), "-o", out, *TINY[:-2], "--steps", "1"],
            "stylize-swap": ["stylize", str(exemplar), str(exemplar), "--method", "style-swap", "-o", out, "--quiet"]}
    assert main([*argv[command], "--device", device]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pytexsynth: error: ") and err.count("\n") == 1 and device in err


def test_nothing_to_optimise_tiny_images_and_outputs_below_a_file(exemplar, tmp_path, capsys):
    base = ["--size", "32", "--iterations", "2", "--no-pyramid", "--quiet", "--device", "cpu"]
    assert main(["texture", str(exemplar), "-o", str(tmp_path / "a.png"), "--style-weight", "0", *base]) == 1
    assert "nothing to optimise" in capsys.readouterr().err
    one = tmp_path / "one.png"
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(one)
    assert main(["train-texture", str(one), "-o", str(tmp_path / "m.pt"), *TINY, "--steps", "1"]) == 1
    assert "1x1 px is too small for relu5_1" in capsys.readouterr().err
    assert main(["texture", str(exemplar), "-o", str(exemplar / "x.png"), *base]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_decompression_bomb_is_refused(tmp_path, capsys):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))
    assert main(["texture", str(bomb), "-o", str(tmp_path / "o.png"), "--quiet", "--device", "cpu"]) == 1
    assert "safety limit" in capsys.readouterr().err


@pytest.mark.parametrize("damage,message", [
    (lambda d: d["architecture"]["kwargs"].update(bogus=1), "cannot be built"),
    (lambda d: d["state_dict"].update({"extra.weight": torch.zeros(2)}), "unexpected ['extra.weight']"),
    (lambda d: d["architecture"]["kwargs"].update(channels=10**6), "do not match its architecture record"),
    (lambda d: d.update(architecture="x"), "malformed architecture record"),
])
def test_crafted_model_files_are_refused_before_allocating(tmp_path, capsys, damage, message):
    from pytexsynth.networks import TextureGenerator, save_model

    save_model(TextureGenerator(scales=2, channels=4), tmp_path / "m.pt")
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    damage(data)
    torch.save(data, tmp_path / "bad.pt")
    assert main(["generate", str(tmp_path / "bad.pt"), "-o", str(tmp_path / "g.png"), "--size", "16"]) == 1
    assert message in capsys.readouterr().err and not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", None])
def test_damaged_checkpoints_are_one_line_errors(tmp_path, content):
    ck = tmp_path / "run.ckpt"
    _tiny_run(steps=2, checkpoint=ck)
    if content is None:  # a checkpoint that lacks a part
        data = torch.load(ck, weights_only=True)
        del data["optimizer"]
        torch.save(data, ck)
    else:
        ck.write_bytes(content)
    with pytest.raises(ValueError, match="checkpoint"):
        _tiny_run(steps=4, checkpoint=ck, resume=True)


def test_stale_snapshots_are_refused_before_the_run(exemplar, tmp_path, capsys):
    out = tmp_path / "o.png"
    (tmp_path / "o.step00002.png").write_bytes(b"earlier")
    argv = ["texture", str(exemplar), "-o", str(out), "--size", "32", "--iterations", "2", "--no-pyramid", "--quiet",
            "--device", "cpu", "--save-every", "2"]
    assert main(argv) == 1
    assert "--save-every would overwrite 1 snapshot" in capsys.readouterr().err and not out.exists()
    assert main([*argv, "--force"]) == 0 and (tmp_path / "o.step00002.png").read_bytes() != b"earlier"


def test_the_memory_refusal_names_a_huge_style_image(monkeypatch):
    from pytexsynth.synthesis import memory

    monkeypatch.setattr(memory, "available_memory", lambda device: 2**30)
    with pytest.raises(MemoryError, match="style image at 8192x8192 px"):
        memory.require_memory(torch.device("cpu"), (64, 64), ("relu5_1",), (8192, 8192), "lbfgs")
    with pytest.raises(MemoryError, match="output at 8192x8192 px; choose a smaller size"):
        memory.require_memory(torch.device("cpu"), (8192, 8192), ("relu5_1",), (64, 64), "lbfgs")


def test_a_checkpoint_with_flipped_bytes_is_refused(tmp_path):
    ck = tmp_path / "run.ckpt"
    _tiny_run(steps=3, checkpoint=ck)
    data = torch.load(ck, weights_only=True)
    data["model"]["weight"][0, 1] += 1e-3  # a changed value, the checksum left as it was
    torch.save(data, ck)
    with pytest.raises(ValueError, match="does not match its checksum"):
        _tiny_run(steps=5, checkpoint=ck, resume=True)
    _tiny_run(steps=3, checkpoint=tmp_path / "ok.ckpt")
    good = pytexsynth.training.load_checkpoint(tmp_path / "ok.ckpt")
    raw = (tmp_path / "ok.ckpt").read_bytes()
    refused = 0
    for offset in range(0, len(raw), max(1, len(raw) // 97)):  # flips all over the file
        bad = tmp_path / "flipped.ckpt"
        bad.write_bytes(raw[:offset] + bytes([raw[offset] ^ 0x10]) + raw[offset + 1:])
        try:
            data = pytexsynth.training.load_checkpoint(bad)
        except ValueError:
            refused += 1
            continue
        # read without an error: then only bytes that carry nothing (zip padding, names) changed
        assert data["checksum"] == good["checksum"] and torch.equal(data["model"]["weight"], good["model"]["weight"])
    assert refused > 50


def test_resume_refuses_changed_settings_unless_anyway(exemplar, tmp_path, capsys):
    model = tmp_path / "m.pt"
    argv = ["train-texture", str(exemplar), "-o", str(model), *TINY]
    assert main([*argv, "--steps", "2"]) == 0
    ckpt_before = (tmp_path / "m.pt.ckpt").read_bytes()
    assert main([*argv, "--steps", "4", "--resume", "--lr", "0.02"]) == 1
    err = capsys.readouterr().err
    assert "other settings (lr: 0.01 -> 0.02)" in err and "--resume-anyway" in err
    assert (tmp_path / "m.pt.ckpt").read_bytes() == ckpt_before and _steps(model) == 2
    assert main([*argv, "--steps", "4", "--resume-anyway", "--lr", "0.02", "--force"]) == 0
    meta = torch.load(model, weights_only=True)["metadata"]
    assert meta["steps"] == 4 and meta["resumed_with_changes"] == [{"step": 2, "changes": {"lr": [0.01, 0.02]}}]


@pytest.mark.parametrize("index", [10**15, 9, -1])
@pytest.mark.parametrize("op", ["decode", "backward"])
def test_style_swap_private_ops_check_their_indices(op, index):
    style, indices = torch.randn(1, 2, 5, 5), torch.full((1, 3, 3), index)  # 3x3 = 9 style patches
    with pytest.raises(RuntimeError, match=r"indices must be in \[0, 9\)"):
        if op == "decode":
            torch.ops.pytexsynth._style_swap_decode(style, indices, 5, 5, 3, 1)
        else:
            torch.ops.pytexsynth._style_swap_backward(style, indices, [1, 2, 5, 5], 3, 1)


def test_gram_schedule_refuses_sizes_that_overflow():
    with pytest.raises(RuntimeError, match="C at most 2\\^24"):
        torch.ops.pytexsynth._gram_schedule(2, 2**62, 72)


def test_reference_fallback_half_precision_and_empty_planes():
    from pytexsynth import reference

    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 2, 6, 6, generator=g).half(), torch.rand(1, 2, 5, 5, generator=g).half()
    style[..., :3, :3] = 0  # an all-zero style patch: its norm + 1e-8 underflowed to 0 in half
    for precision in ("ieee", "bf16"):  # bf16 on half input raised a dtype error
        ref = reference.style_swap(content, style, precision=precision)
        assert torch.isfinite(ref).all() and float(ref.abs().max()) > 0
        assert torch.equal(ref, pytexsynth.ops.style_swap(content, style, precision=precision))
    stats = pytexsynth.ops.histogram_stats(torch.rand(1, 3, 4, 4, generator=g))
    assert reference.histogram_match(torch.rand(1, 3, 0, 4), stats).shape == (1, 3, 0, 4)  # raised


def test_batch_norm_with_one_value_per_channel_is_refused_before_training(exemplar, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(exemplar).save(photos / "a.png")
    assert main(["train-stylizer", str(exemplar), str(photos), "-o", str(tmp_path / "s.pt"), "--size", "64",
                 "--batch-size", "1", "--steps", "1", "--quiet", "--device", "cpu"]) == 1
    assert "batch norm sees one value per channel" in capsys.readouterr().err


def test_a_foreign_file_is_safe_when_resuming_from_another_checkpoint(tmp_path):
    first, foreign = tmp_path / "first.ckpt", tmp_path / "notes.txt"
    _tiny_run(steps=2, checkpoint=first)
    foreign.write_text("mine")
    with pytest.raises(ValueError, match="refusing to overwrite it"):
        _tiny_run(steps=4, checkpoint=foreign, resume=first)
    assert foreign.read_text() == "mine"


def test_force_starts_again_over_a_damaged_checkpoint(exemplar, tmp_path, capsys):
    model, ck = tmp_path / "m.pt", tmp_path / "m.pt.ckpt"
    argv = ["train-texture", str(exemplar), "-o", str(model), *TINY, "--steps", "2"]
    assert main(argv) == 0
    data = torch.load(ck, weights_only=True)
    data["losses"][0] += 1.0  # damaged: its checksum no longer matches
    torch.save(data, ck)
    assert main([*argv, "--resume"]) == 1
    assert "does not match its checksum" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0 and _steps(model) == 2


def test_resume_accepts_the_same_settings_spelt_otherwise(exemplar, tmp_path, monkeypatch):
    monkeypatch.chdir(exemplar.parent)
    model = tmp_path / "m.pt"
    assert main(["train-texture", "ex.png", "-o", str(model), *TINY, "--steps", "2"]) == 0
    assert main(["train-texture", "./ex.png", "-o", str(model), *TINY, "--steps", "3", "--resume"]) == 0
    assert _steps(model) == 3 and "resumed_with_changes" not in torch.load(model, weights_only=True)["metadata"]


def test_an_infinite_gradient_is_not_balanced_away():
    from pytexsynth.synthesis.engine import Term, balance_scales

    x = torch.rand(1, 3, 32, 32)
    vgg = pytexsynth.VGG19(("relu1_1",))
    terms = [Term("huge", 1.0, lambda fe, img: (img * 1e38).square().sum())]  # overflows to inf
    with pytest.raises(FloatingPointError, match="huge term's gradient is not finite"):
        balance_scales(terms, x, vgg, ("relu1_1",), True, torch.Generator().manual_seed(0))


def test_more_hostile_training_arguments(exemplar, tmp_path, capsys):
    model = tmp_path / "m.pt"
    assert main(["train-texture", str(exemplar), "-o", str(model), "--checkpoint", str(model), *TINY,
                 "--steps", "1"]) == 1
    assert "is the output model itself" in capsys.readouterr().err
    with pytest.raises(ValueError, match="style_weight must be a number >= 0 and finite"):
        pytexsynth.train_texture_network(str(exemplar), size=16, steps=1, scales=2, style_weight=float("nan"),
                                         progress=False, device="cpu")
    assert main(["texture", str(exemplar), "-o", str(tmp_path / "o.png"), "--device", "meta", "--quiet"]) == 1
    assert "holds no data" in capsys.readouterr().err


def _autocast_cases():
    from pytexsynth import nn as tnn
    from pytexsynth import ops

    g = torch.Generator().manual_seed(0)
    style = torch.rand(1, 8, 12, 12, generator=g)
    w = torch.rand(8, 8, 3, 3, generator=g)
    stats = ops.histogram_stats(torch.rand(1, 8, 10, 10, generator=g))
    return {
        "gram": lambda x: ops.gram(x),
        "gram_loss": lambda x: ops.gram_loss(x, torch.eye(8)[None]),
        "gram_loss_multi": lambda x: ops.gram_loss_multi([x, x[..., ::2, ::2]], [torch.eye(8)[None]] * 2, [1.0, 0.5]),
        "histogram_loss": lambda x: ops.histogram_loss(x, stats),
        "circular_pad2d": lambda x: ops.circular_pad2d(x, (1, 2, 1, 2)),
        "winograd_conv3x3": lambda x: ops.winograd_conv3x3(x, ops.winograd_weight(w)),
        "style_swap": lambda x: ops.style_swap(x, style),
        "nn.StyleSwap": lambda x: tnn.StyleSwap(style)(x),
    }


@pytest.mark.parametrize("name", list(_autocast_cases()))
def test_ops_under_cpu_bf16_autocast_give_their_float32_result(name):
    # item 16: style_swap died under CPU bf16 autocast ("style_swap_combine_pixels_cpu" not
    # implemented for BFloat16: autocast recast the GEMM inside the kernel) and winograd_weight
    # returned bf16 weights that winograd_conv3x3 refused. Ops compute in their inputs' dtype.
    fn = _autocast_cases()[name]
    x = torch.rand(1, 8, 10, 10, generator=torch.Generator().manual_seed(1), requires_grad=True)
    want = fn(x)
    (want_grad,) = torch.autograd.grad(want.float().sum(), x) if want.requires_grad else (None,)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fn(x)
    assert got.dtype == want.dtype and torch.equal(got, want)
    if want_grad is not None:
        (got_grad,) = torch.autograd.grad(got.float().sum(), x)
        assert torch.equal(got_grad, want_grad)


def test_style_swap_training_and_generate_refuse_sizes_that_do_not_fit(exemplar, tmp_path, capsys, monkeypatch):
    # item 16: at 4096 px these ran with no estimate (style-swap's one pass, train-texture,
    # generate); now each refuses in one line, before any work, when its estimate exceeds the
    # free memory (here pretended to be 256 MiB).
    from pytexsynth.synthesis import memory

    model = tmp_path / "g.pt"
    assert main(["train-texture", str(exemplar), "-o", str(model), "--steps", "1", *TINY]) == 0
    capsys.readouterr()
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.setattr(memory, "available_memory", lambda device: 2**28)
    cases = [
        (["stylize", str(exemplar), str(exemplar), "--method", "style-swap", "--size", "4096"],
         "style-swap needs about", "output at 4096x4096 px"),
        (["train-texture", str(exemplar), "--size", "1024", "--steps", "1", "--quiet"],
         "train-texture at 1024x1024 px, batch 4, needs about", "VGG-19's activations"),
        (["generate", str(model), "--size", "4096"], "generate needs about", "1 sample(s) at 4096x4096 px"),
    ]
    for args, start, culprit in cases:
        out = tmp_path / f"{args[0]}.out"
        assert main([*args, "-o", str(out.with_suffix(".pt" if args[0] == "train-texture" else ".png"))]) == 1
        err = capsys.readouterr().err
        assert f"pytexsynth: error: {start}" in err and culprit in err and "GiB" in err, err
        assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_generator_memory_scales_with_the_pixels_and_counts_samples():
    from pytexsynth.networks import TextureGenerator
    from pytexsynth.networks.memory import generator_memory

    net = TextureGenerator(scales=3, channels=4, norm="instance")
    one = generator_memory(net, 1, (64, 64), training=False)
    assert generator_memory(net, 1, (128, 256), training=False) == 8 * one
    assert generator_memory(net, 3, (64, 64), training=False) == 3 * one
    assert generator_memory(net, 1, (64, 64), training=True) > one  # every activation is kept


@pytest.mark.parametrize("delay", [0.3, 0.6, 1.0, 1.5])  # after the interpreter has started
def test_ctrl_c_in_the_first_seconds_is_one_line(exemplar, tmp_path, delay):
    # item 11: a Ctrl-C while `pytexsynth` was still importing torch (its first second or two)
    # ended in a KeyboardInterrupt traceback: the command's entry point (pytexsynth_cli, what
    # the installed `pytexsynth` script runs) now catches it from its first instruction.
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    home = str(Path(pytexsynth.__file__).resolve().parent.parent)  # the build under test
    env = {**os.environ, "PYTHONPATH": home + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = tmp_path / "out.png"
    proc = subprocess.Popen([sys.executable, "-c", "import sys, pytexsynth_cli; sys.exit(pytexsynth_cli.main())",
                             "texture", str(exemplar), "-o", str(out), "--size", "64", "--iterations", "500"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "pytexsynth: interrupted", err
    assert not out.exists()
