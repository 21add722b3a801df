"""The generic training loop: it learns, resumes bit-identically, checkpoints atomically, and
trains data-parallel (DDP, gloo, two CPU processes)."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pytexsynth.networks import TextureGenerator, load_model
from pytexsynth.training import load_checkpoint, train
from pytexsynth.training.checkpoint import content_digest

pytestmark = pytest.mark.usefixtures("one_thread")


TARGET_MEAN = torch.tensor([0.2, 0.5, 0.7]).view(1, 3, 1, 1)


def _plain_loss(model, noise):
    """A cheap differentiable loss (mean colour and contrast), standing in for the VGG losses."""
    y = model(noise)
    return ((y.mean((2, 3), keepdim=True) - TARGET_MEAN) ** 2).mean() + (y.std() - 0.2) ** 2


def _stats_loss(model, noise):
    """The same, plus a term drawn from the global RNG, so resume must restore that too."""
    return _plain_loss(model, noise) + 1e-3 * torch.rand(())


def _make(seed=0, norm="batch"):
    torch.manual_seed(seed)
    return TextureGenerator(scales=2, channels=4, norm=norm)


def _noise_batches(model, n=2, size=16):
    return lambda gen, step: model.sample_noise(n, size, gen)


class _Stop(Exception):
    pass


def _run(init_seed, steps=6, stop_at=None, loss=_stats_loss, **kw):
    g = _make(init_seed, kw.pop("norm", "batch"))

    def cb(step, loss):
        if step == stop_at:
            raise _Stop

    try:
        return train(g, loss, _noise_batches(g), steps=steps, progress=False, lr=0.05, callback=cb, **kw)
    except _Stop:
        return None


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_short_training_lowers_the_loss():
    res = _run(0, steps=40, lr_schedule="cosine")
    assert len(res.losses) == 40 and res.step == 40
    first, last = sum(res.losses[:5]) / 5, sum(res.losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)


@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_resume_equals_uninterrupted_run(tmp_path, schedule):
    ck = tmp_path / "ck.pt"
    full = _run(0, steps=7, lr_schedule=schedule, lr_decay_every=2)
    # interrupted after step 5: the last checkpoint is the one of step 3
    assert _run(0, steps=7, stop_at=5, checkpoint=ck, checkpoint_every=3, lr_schedule=schedule, lr_decay_every=2) is None
    assert load_checkpoint(ck)["step"] == 3
    # a differently initialised model: everything must come from the checkpoint
    torch.manual_seed(99)  # and a disturbed global RNG
    resumed = _run(1, steps=7, checkpoint=ck, checkpoint_every=3, resume=True, lr_schedule=schedule, lr_decay_every=2)
    assert resumed.losses == full.losses  # bitwise, the first three restored from the checkpoint
    assert _same_state(resumed.model, full.model)
    final = load_checkpoint(ck)
    assert final["step"] == 7 and final["architecture"] == full.model.architecture()
    assert _same_state(load_model(ck), full.model)  # a checkpoint loads as a model, no arguments
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_needs_every_piece(tmp_path):
    # The control for the test above: resuming without the RNG states is not identical.
    ck = tmp_path / "ck.pt"
    full = _run(0, steps=6)
    _run(0, steps=6, stop_at=4, checkpoint=ck, checkpoint_every=3)
    data = load_checkpoint(ck)
    data["rng"][0]["batches"] = torch.Generator().manual_seed(5).get_state()
    data["checksum"] = content_digest(data)  # a deliberate change, sealed again (else refused as corrupted)
    torch.save(data, ck)
    resumed = _run(0, steps=6, checkpoint=ck, resume=ck, checkpoint_every=3)
    assert resumed.losses[:3] == full.losses[:3] and resumed.losses[3:] != full.losses[3:]


def test_resume_true_without_a_checkpoint_starts_fresh(tmp_path):
    res = _run(0, steps=3, checkpoint=tmp_path / "new.pt", resume=True)
    assert res.losses == _run(0, steps=3).losses


def test_checkpoint_is_written_every_n_steps(tmp_path):
    ck = tmp_path / "ck.pt"
    seen = []

    def cb(step, loss):
        seen.append((step, load_checkpoint(ck)["step"] if ck.exists() else None))

    g = _make()
    train(g, _stats_loss, _noise_batches(g), steps=5, checkpoint=ck, checkpoint_every=2, progress=False, callback=cb)
    assert seen == [(1, None), (2, 2), (3, 2), (4, 4), (5, 4)]
    assert load_checkpoint(ck)["step"] == 5


def test_progress_bar_shows_the_loss(capsys):
    g = _make()
    train(g, _stats_loss, _noise_batches(g), steps=2, progress=True, desc="tiny")
    err = capsys.readouterr().err
    assert "tiny" in err and "loss=" in err


def test_bad_arguments(tmp_path):
    g = _make()
    b = _noise_batches(g)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        train(g, _stats_loss, b, steps=0)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        train(g, _stats_loss, b, steps=1, lr=-1.0)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        train(g, _stats_loss, b, steps=1, lr_schedule="exp")
    with pytest.raises(ValueError, match="checkpoint_every must be a positive int"):
        train(g, _stats_loss, b, steps=1, checkpoint_every=0)
    with pytest.raises(ValueError, match="resume=True needs checkpoint="):
        train(g, _stats_loss, b, steps=1, resume=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train(g, _stats_loss, b, steps=1, resume=tmp_path / "nope.pt")
    with pytest.raises(TypeError, match="loss_fn must return a scalar tensor"):
        train(g, lambda m, z: m(z), b, steps=1, progress=False)
    with pytest.raises(FloatingPointError, match="the loss is nan at step 0"):
        train(g, lambda m, z: m(z).sum() * float("nan"), b, steps=1, progress=False)
    ck = tmp_path / "other.pt"
    other = TextureGenerator(scales=2, channels=3)
    train(other, _stats_loss, _noise_batches(other), steps=1, checkpoint=ck, progress=False)
    with pytest.raises(ValueError, match="checkpoint .* is of"):
        train(g, _stats_loss, b, steps=2, resume=ck, progress=False)


# ---- DDP: two processes, gloo, CPU --------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, tmp: str) -> None:
    torch.set_num_threads(1)
    # As torchrun would set it: train() creates (and destroys) the process group from the environment.
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    full = _run(0, steps=4, norm="instance", lr_schedule="constant", seed=3, loss=_plain_loss)
    assert not dist.is_initialized()

    # Resume under DDP (a process group made by the caller this time): 2 steps, then resume to 4
    # (a constant learning rate, so the shorter first run is the start of the longer one).
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=world)
    ck = os.path.join(tmp, "ck.pt")
    _run(0, steps=2, norm="instance", lr_schedule="constant", seed=3, checkpoint=ck, checkpoint_every=2, loss=_plain_loss)
    dist.barrier()
    resumed = _run(5, steps=4, norm="instance", lr_schedule="constant", seed=3, checkpoint=ck, resume=ck,
                   checkpoint_every=2, loss=_plain_loss)
    dist.destroy_process_group()
    torch.save({"full": full.model.state_dict(), "losses": full.losses, "resumed": resumed.model.state_dict(),
                "resumed_losses": resumed.losses}, os.path.join(tmp, f"rank{rank}.pt"))


def test_ddp_two_processes_gloo(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    # the ranks end with the same weights and report the same (averaged) loss
    for k in r0["full"]:
        assert torch.equal(r0["full"][k], r1["full"][k]), k
    assert r0["losses"] == r1["losses"]
    # resume under DDP equals the uninterrupted DDP run, on both ranks
    for r in (r0, r1):
        assert r["resumed_losses"] == r0["losses"]
        for k in r["full"]:
            assert torch.equal(r["resumed"][k], r0["full"][k]), k
    assert len(load_checkpoint(tmp_path / "ck.pt")["rng"]) == 2  # every rank's RNG states

    # It is data parallelism: the same as one process averaging the losses of the two ranks'
    # batches. (Weights are not compared: directions the loss hardly constrains, such as conv
    # biases before a norm, get gradients at rounding level, which Adam's normalisation turns into
    # full-size steps; the summation order of the all-reduce differs from autograd's.)
    g = _make(0, "instance")
    opt = torch.optim.Adam(g.parameters(), lr=0.05)
    gens = [torch.Generator().manual_seed(3 * 1_000_003 + r) for r in range(2)]
    losses = []
    for _ in range(4):
        loss = sum(_plain_loss(g, g.sample_noise(2, 16, gen)) for gen in gens) / 2
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.testing.assert_close(torch.tensor(r0["losses"]), torch.tensor(losses), rtol=1e-3, atol=1e-5)
    assert losses[-1] < 0.5 * losses[0]


# ---- the Texture Networks trainers (VGG-19 losses; tiny sizes) ----------------------------------
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import pytexsynth  # noqa: E402
from pytexsynth.networks import StylizationGenerator  # noqa: E402

TINY_LAYERS = ("relu1_1", "relu2_1")


def _stripes(h=48, w=48):
    """A strongly structured exemplar: coloured diagonal stripes."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    t = ((xx + yy) % 8 < 4).float()
    return torch.stack([t, 0.3 + 0.4 * t, 1 - t])[None]


def test_train_texture_network_lowers_the_gram_loss(tmp_path):
    out = tmp_path / "tex.pt"
    kw = dict(size=16, batch_size=2, scales=2, channels=4, style_layers=TINY_LAYERS, lr=0.05, progress=False,
              device="cpu")
    net = pytexsynth.train_texture_network(_stripes(), steps=25, output=out, **kw)
    first, last = sum(net.losses[:3]) / 3, sum(net.losses[-3:]) / 3
    assert last < 0.6 * first, (first, last)
    loaded = pytexsynth.load_model(out)
    assert isinstance(loaded, TextureGenerator) and loaded.config["channels"] == 4
    meta = torch.load(out, weights_only=True)["metadata"]
    assert meta["kind"] == "texture" and meta["steps"] == 25
    assert torch.equal(loaded.generate(2, 32, seed=0), net.generate(2, 32, seed=0))


def test_train_texture_network_with_histogram_loss_and_resume(tmp_path):
    ck = tmp_path / "ck.pt"
    kw = dict(size=16, batch_size=1, scales=2, channels=4, style_layers=TINY_LAYERS, histogram_layers=("relu1_1",),
              histogram_weight=0.5, lr=0.05, lr_schedule="constant", progress=False, device="cpu")
    torch.manual_seed(0)
    full = pytexsynth.train_texture_network(_stripes(), steps=4, **kw)
    torch.manual_seed(0)
    pytexsynth.train_texture_network(_stripes(), steps=2, checkpoint=ck, checkpoint_every=2, **kw)
    torch.manual_seed(1)  # another initialisation: the weights must come from the checkpoint
    resumed = pytexsynth.train_texture_network(_stripes(), steps=4, checkpoint=ck, resume=True, **kw)
    assert resumed.losses == full.losses
    assert _same_state(resumed, full)


def test_train_texture_network_errors():
    kw = dict(steps=1, progress=False, device="cpu", scales=2)
    with pytest.raises(ValueError, match=r"output height 18 is not a positive multiple of 2\*\*2 = 4"):
        pytexsynth.train_texture_network(_stripes(), size=18, **kw)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        pytexsynth.train_texture_network(_stripes(), size=16, batch_size=0, **kw)
    with pytest.raises(ValueError, match=r"exemplar must be a \(3, H, W\) or \(1, 3, H, W\)"):
        pytexsynth.train_texture_network(torch.rand(2, 3, 8, 8), size=16, **kw)
    with pytest.raises(ValueError, match="nothing to train for"):
        pytexsynth.train_texture_network(_stripes(), size=16, style_weight=0.0, style_layers=TINY_LAYERS, **kw)
    with pytest.raises(pytexsynth.io.ImageLoadError, match="no such file"):
        pytexsynth.train_texture_network("/nonexistent/exemplar.png", size=16, **kw)


def _content_folder(path, n_good=3, junk=True):
    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n_good):
        arr = (rng.random((20 + 4 * i, 28, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(path / f"img{i}.png")
    if junk:
        (path / "notes.txt").write_text("not an image")
        (path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return path


def test_train_stylization_network(tmp_path):
    folder = _content_folder(tmp_path / "photos")
    out = tmp_path / "sty.pt"
    with pytest.warns(RuntimeWarning, match=r"skipped 2 unreadable file\(s\): broken.jpg .*notes.txt"):
        net = pytexsynth.train_stylization_network(
            _stripes(), folder, size=16, steps=12, batch_size=2, scales=2, channels=4, style_layers=TINY_LAYERS,
            content_layers=("relu2_1",), lr=0.05, progress=False, device="cpu", output=out)
    assert len(net.skipped_images) == 2
    assert sum(net.losses[-3:]) < sum(net.losses[:3])
    meta = torch.load(out, weights_only=True)["metadata"]
    assert meta["skipped_images"] == 2 and meta["content_images"] == 3
    loaded = pytexsynth.load_model(out)
    assert isinstance(loaded, StylizationGenerator)
    photo = torch.rand(1, 3, 21, 30)
    assert torch.equal(loaded.stylize(photo), net.stylize(photo))


def test_train_stylization_network_folder_errors(tmp_path):
    kw = dict(size=16, steps=1, scales=2, progress=False, device="cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no readable images \\(0 file"):
        pytexsynth.train_stylization_network(_stripes(), empty, **kw)
    junk_only = tmp_path / "junk"
    junk_only.mkdir()
    (junk_only / "a.png").write_bytes(b"nope")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="holds no readable images \\(1 file\\(s\\), 1 unreadable\\)"):
            pytexsynth.train_stylization_network(_stripes(), junk_only, **kw)
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        pytexsynth.train_stylization_network(_stripes(), tmp_path / "missing", **kw)
