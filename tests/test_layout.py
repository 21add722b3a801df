"""The package's layout: a clean import graph, every public name and CLI flag of the previous
(flat) layout still there, and the fused multi-layer Gram op on the paths synthesis runs."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

import pytexsynth
from pytexsynth import ops

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import check_layout  # noqa: E402

# The public names of the flat layout (before pytexsynth/ops/, synthesis/, training/, cli/).
PUBLIC_NAMES = {
    "pytexsynth": ["InverseNet", "VGG19", "__version__", "has_cuda", "has_extension", "info", "io", "load_model",
                   "losses", "models", "networks", "nn", "ops", "reference", "save_model", "style_swap_transfer",
                   "synthesize_texture", "train_inverse_network", "train_stylization_network",
                   "train_texture_network", "training", "transfer_style"],
    "pytexsynth.ops": ["HistogramStats", "circular_pad2d", "gram", "gram_loss", "gram_loss_multi", "histogram_loss",
                       "histogram_match", "histogram_stats", "style_swap", "winograd_conv3x3", "winograd_weight"],
    "pytexsynth.nn": ["CircularConv2d", "CircularPad2d", "GramLoss", "HistogramLoss", "StyleSwap"],
    "pytexsynth.losses": ["ContentLoss", "GramStyleLoss", "HistogramStyleLoss", "TotalVariationLoss", "content_loss",
                          "label_masks", "total_variation"],
    "pytexsynth.synthesis": ["DEFAULT_CONTENT_LAYERS", "DEFAULT_HISTOGRAM_LAYERS", "DEFAULT_STYLE_LAYERS",
                             "SynthesisProgress", "estimate_memory", "synthesize_texture", "transfer_style"],
    "pytexsynth.training": ["CHECKPOINT_FORMAT", "TrainResult", "load_checkpoint", "train"],
    "pytexsynth.networks": ["InverseNet", "SavableNetwork", "StylizationGenerator", "TextureGenerator", "load_model",
                            "network_classes", "register_network", "save_model", "train_inverse_network"],
    "pytexsynth.models": ["LAYER_NAMES", "VGG19", "WeightsNotFoundError", "default_weights_path",
                          "load_vgg19_state_dict"],
    "pytexsynth.io": ["ImageLoadError", "load_image", "resize_image", "save_image"],
    "pytexsynth.style_transfer": ["DEFAULT_STYLE_SIZE", "METHODS", "default_decoder_path", "load_default_decoder",
                                  "style_swap_transfer", "swap_target"],
}

# Every flag of every command of the flat layout's CLI.
CLI_FLAGS = {
    "stylize": ["--blend", "--content-weight", "--decoder", "--device", "--force", "--histogram-weight", "--init",
                "--iterations", "--layer", "--lr", "--method", "--model", "--no-pyramid", "--optimize", "--optimizer",
                "--output", "--patch-size", "--pooling", "--preserve-color", "--quiet", "--raw-weights",
                "--report-every", "--save-every", "--seed", "--size", "--strength", "--stride", "--style-layers",
                "--style-scale", "--style-size", "--style-weight", "--threads", "--tileable", "--tv-weight", "-o"],
    "texture": ["--device", "--force", "--histogram-weight", "--iterations", "--lr", "--no-pyramid", "--optimizer",
                "--output", "--pooling", "--quiet", "--raw-weights", "--report-every", "--save-every", "--seed",
                "--size", "--style-layers", "--style-scale", "--style-weight", "--threads", "--tileable",
                "--tv-weight", "-o"],
    "demo": ["--device", "--output-dir", "--quiet", "--threads"],
    "train-texture": ["--batch-size", "--channels", "--checkpoint", "--checkpoint-every", "--device",
                      "--exemplar-size", "--force", "--histogram-weight", "--lr", "--lr-schedule", "--norm",
                      "--output", "--quiet", "--resume", "--scales", "--seed", "--size", "--steps", "--style-weight",
                      "-o"],
    "train-stylizer": ["--batch-size", "--channels", "--checkpoint", "--checkpoint-every", "--content-weight",
                       "--device", "--force", "--histogram-weight", "--lr", "--lr-schedule", "--norm", "--output",
                       "--quiet", "--resume", "--scales", "--seed", "--size", "--steps", "--style-size",
                       "--style-weight", "-o"],
    "generate": ["--device", "--force", "--output", "--seed", "--size", "-n", "-o"],
    "train-inverse": ["--batch-size", "--checkpoint", "--checkpoint-every", "--device", "--force", "--jitter",
                      "--layer", "--lr", "--lr-schedule", "--norm", "--output", "--patch-size", "--quiet", "--resume",
                      "--seed", "--size", "--steps", "--style-dir", "--threads", "--tv-weight", "-o"],
    "info": [],
}


def test_import_graph_is_clean_and_sizes_within_limits():
    problems = check_layout.check(ROOT / "pytexsynth", max_file_lines=420, max_function_lines=60)
    assert problems == []


def test_checker_finds_cycles_and_private_uses(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n\ndef _helper():\n    return 1\n")
    (pkg / "b.py").write_text("from . import a\n\ndef f():\n    return a._helper()\n")
    problems = check_layout.check(pkg, max_file_lines=420, max_function_lines=60)
    assert any(p.startswith("cycle: ") for p in problems)
    assert "private: pkg.b uses pkg.a._helper" in problems


@pytest.mark.parametrize("module", sorted(PUBLIC_NAMES))
def test_public_names_of_the_flat_layout_still_work(module):
    mod = importlib.import_module(module)
    missing = [n for n in PUBLIC_NAMES[module] if not hasattr(mod, n)]
    assert missing == []
    # still exported, except where a name moved out and its old path only resolves it (on access)
    moved = {"pytexsynth.networks": {"train_inverse_network"}}.get(module, set())
    assert set(PUBLIC_NAMES[module]) - moved <= set(mod.__all__)


def test_moved_names_are_the_same_objects():
    from pytexsynth.networks import train_inverse_network
    from pytexsynth.style_transfer import style_swap_transfer

    assert train_inverse_network is pytexsynth.training.train_inverse_network
    assert style_swap_transfer is pytexsynth.synthesis.style_swap_transfer
    assert pytexsynth.nn.GramLoss is pytexsynth.losses.GramLoss
    assert pytexsynth.nn.HistogramLoss is pytexsynth.losses.HistogramLoss
    assert issubclass(pytexsynth.losses.GramStyleLoss, pytexsynth.losses.GramLoss)
    assert issubclass(pytexsynth.losses.HistogramStyleLoss, pytexsynth.losses.HistogramLoss)


@pytest.mark.parametrize("command", sorted(CLI_FLAGS))
def test_cli_flags_of_the_flat_layout_still_work(command):
    from pytexsynth.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    flags = {o for a in sub.choices[command]._actions for o in a.option_strings}
    assert set(CLI_FLAGS[command]) <= flags


class _Counter:
    """Wraps an op function of pytexsynth.ops, counting its calls."""

    def __init__(self, monkeypatch, name):
        self.calls = 0
        real = getattr(ops, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(ops, name, counted)


def _exemplar():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 32, 32, generator=g)


def test_synthesis_runs_through_gram_loss_multi(monkeypatch, one_thread):
    multi, per_layer = _Counter(monkeypatch, "gram_loss_multi"), _Counter(monkeypatch, "gram_loss")
    pytexsynth.synthesize_texture(_exemplar(), 32, iterations=2, pyramid=False, device="cpu")
    assert multi.calls >= 2 and per_layer.calls == 0  # one multi-layer op per evaluation, none per layer
    before = multi.calls
    pytexsynth.transfer_style(_exemplar(), _exemplar(), 32, iterations=2, pyramid=False, device="cpu")
    assert multi.calls > before and per_layer.calls == 0


def test_masked_style_loss_is_one_gram_loss_multi_call(monkeypatch):
    from pytexsynth.losses import GramStyleLoss, label_masks

    multi, per_layer = _Counter(monkeypatch, "gram_loss_multi"), _Counter(monkeypatch, "gram_loss")
    feats = {"a": torch.rand(1, 4, 8, 8), "b": torch.rand(1, 6, 4, 4)}
    labels = torch.zeros(8, 8, dtype=torch.long)
    labels[:, 4:] = 1
    loss = GramStyleLoss([feats], output_masks=label_masks(labels), style_masks=[label_masks(labels)])
    assert float(loss(feats)) < 1e-10
    assert (multi.calls, per_layer.calls) == (1, 0)


def test_trainers_run_through_gram_loss_multi(monkeypatch, one_thread):
    multi, per_layer = _Counter(monkeypatch, "gram_loss_multi"), _Counter(monkeypatch, "gram_loss")
    pytexsynth.train_texture_network(_exemplar(), size=16, steps=2, batch_size=1, scales=2, channels=4,
                                     progress=False, device="cpu")
    assert multi.calls == 2 and per_layer.calls == 0  # one per training step
