"""What every command of the ``pytexsynth`` CLI shares: argument types, the output check, the
progress bar, the thread default, and the error policy.

Error policy: a command raises :class:`CLIError` (or one of :data:`USER_ERRORS`) for anything the
user can fix; :func:`pytexsynth.cli.main` prints it as one line, ``pytexsynth: error: ...``, and
exits with status 1. :class:`UsageError` is a wrong combination of options: the command's usage
and the message are printed, exit status 2, as argparse does for its own errors.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Tuple, Union

import torch

from ..io import ImageLoadError
from ..models.vgg import WeightsNotFoundError

__all__ = ["CLIError", "UsageError", "USER_ERRORS", "PREVIEW_SIZE", "PREVIEW_ITERATIONS", "preview_path",
           "positive_int", "nonnegative_int", "unit_interval", "size_arg", "check_output", "add_bits_option",
           "add_run_options", "default_threads", "apply_threads", "progress", "report_every", "load_network"]


class CLIError(Exception):
    """A user-facing error: printed as ``pytexsynth: error: ...``, exit status 1."""


class UsageError(CLIError):
    """Options that do not go together: printed with the command's usage, exit status 2."""


# What the API raises for bad input a user can fix; main prints these as one line, exit status 1.
USER_ERRORS = (CLIError, ImageLoadError, WeightsNotFoundError, FileExistsError, FileNotFoundError, NotADirectoryError,
               PermissionError, MemoryError, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), ValueError,
               FloatingPointError, ConnectionError)


# ``stylize --preview``: one level (what the full run's coarsest level is at 512 px), the longer
# side at most PREVIEW_SIZE px, PREVIEW_ITERATIONS iterations (unless --iterations is given),
# written beside the output as STEM.preview.EXT. 20 iterations left the style visibly weaker
# than the full run's, 40 close to it (rocket/coffee, by eye); a pyramid down to 32 px made it
# far stronger (the coarse level barely holds the content).
PREVIEW_SIZE = 128
PREVIEW_ITERATIONS = 40


def preview_path(output: Union[str, Path]) -> Path:
    """Where ``--preview`` writes: ``out.png`` -> ``out.preview.png`` (the full run's name stays free)."""
    out = Path(output)
    return out.with_name(f"{out.stem}.preview{out.suffix}")


def tile_value(v: str):
    """argparse type of --tile: auto, none, checkpoint or a side in pixels (>= 16)."""
    if v in ("auto", "checkpoint"):
        return v
    if v == "none":
        return None
    return _int_at_least(v, 16, "auto, none, checkpoint or a tile side in pixels (>= 16)")


def halo_value(v: str):
    """argparse type of --halo: exact or pixels (>= 0)."""
    return v if v == "exact" else _int_at_least(v, 0, "exact or a halo in pixels (>= 0)")


def _int_at_least(v: str, lowest: int, expected: str) -> int:
    try:
        i = int(v)
    except ValueError:
        i = lowest - 1
    if i < lowest:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {v!r}") from None
    return i


def positive_int(v: str) -> int:
    """argparse type: an int >= 1."""
    return _int_at_least(v, 1, "a positive integer")


def nonnegative_int(v: str) -> int:
    """argparse type: an int >= 0."""
    return _int_at_least(v, 0, "an integer >= 0")


def unit_interval(v: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        f = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {v!r}") from None
    if not 0.0 <= f <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {v!r}")
    return f


def size_arg(s: str) -> Union[int, Tuple[int, int]]:
    """argparse type: 'N' or 'HxW' (height x width), positive ints."""
    parts = s.lower().split("x")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or HxW, got {s!r}") from None
    if len(vals) not in (1, 2) or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"size must be N or HxW with positive ints, got {s!r}")
    return vals[0] if len(vals) == 1 else (vals[0], vals[1])


def check_output(path: Union[str, Path], force: bool, image: bool = True, bits: int = 8) -> Path:
    """The output file, refused before any work when it exists (without --force), is a folder,
    lies below a file or in a folder this process cannot write, or (for an image) has an
    extension Pillow cannot write or is not a PNG with ``--bits 16``."""
    out = Path(path)
    if out.is_dir():
        raise CLIError(f"{str(out)!r} is a directory; give a file name")
    folder = next((p for p in out.absolute().parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise CLIError(f"cannot write {str(out)!r}: {str(folder)!r} is a file, not a folder")
    if folder is not None and not os.access(folder, os.W_OK | os.X_OK):
        raise CLIError(f"cannot write {str(out)!r}: the folder {str(folder)!r} is not writable")
    if out.exists() and not force:
        raise CLIError(f"{str(out)!r} exists; pass --force to overwrite it")
    if image:
        from PIL import Image

        if Image.registered_extensions().get(out.suffix.lower()) is None:
            raise CLIError(f"unknown image extension {out.suffix!r} in {str(out)!r}; use .png, .jpg, ...")
        if bits == 16 and out.suffix.lower() != ".png":
            raise CLIError(f"--bits 16 writes PNG only; give a .png output, not {str(out)!r}")
    return out


def add_bits_option(p: argparse.ArgumentParser) -> None:
    """--bits: bits per channel of the written images."""
    p.add_argument("--bits", type=int, choices=(8, 16), default=8,
                   help="bits per channel of the output image (default 8; 16: a 16-bit PNG, colour kept)")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """--quiet and --threads: every command that computes."""
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads (default: the cores this process may use; OMP_NUM_THREADS, when set, is "
                        "respected). The result is the same for every thread count (README, Reproducibility)")


def default_threads() -> int:
    """CPU threads for a run: the cores this process may use, at most torch's default. Not the
    idle cores: a default that followed the load average gave another image for the same command
    on a busy machine (thread counts change the order of PyTorch's reductions; see README,
    "Reproducibility"). On a machine shared with other jobs, --threads 1 is often faster."""
    import torch

    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), cpus))


def apply_threads(args: argparse.Namespace) -> None:
    """--threads, else OMP_NUM_THREADS (left to torch), else :func:`default_threads`."""
    if not hasattr(args, "threads"):
        return
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    elif not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(default_threads())


def progress(args: argparse.Namespace, out: Path, desc: str):
    """(callback, close): the callback drives a tqdm bar and the --save-every snapshots."""
    from tqdm import tqdm

    from .distributed import writes_files

    from ..io import save_image

    bar = None if args.quiet else tqdm(total=1, desc=desc, unit="it", dynamic_ncols=True, leave=True)
    state = {"done": 0, "total": 0}

    def callback(p) -> None:
        if bar is not None:
            if bar.total != p.total_steps:
                bar.total = p.total_steps
            bar.update(p.step - state["done"])
            extra = {"memory": p.memory} if getattr(p, "memory", "") else {}
            bar.set_postfix(level=f"{p.level + 1}/{p.levels} {p.size[1]}x{p.size[0]}", loss=f"{p.loss:.4g}",
                            refresh=False, **extra)
        state["done"], state["total"] = p.step, p.total_steps
        if getattr(args, "save_every", None) and p.step % args.save_every == 0 and writes_files():
            snap = out.with_name(f"{out.stem}.step{p.step:05d}{out.suffix}")
            save_image(p.image, snap, force=args.force, bits=getattr(args, "bits", 8))

    def close() -> None:
        if bar is not None:
            bar.close()

    callback.state = state  # the last step reported and the planned total (read by --preview's message)
    return callback, close


def report_every(args: argparse.Namespace) -> int:
    """--report-every, made to divide --save-every: snapshots are taken at report steps."""
    return math.gcd(args.report_every, args.save_every) if args.save_every else args.report_every


def load_network(path: str, device):
    """A network saved by save_model or a trainer (on ``device``, default CUDA when available)."""
    from ..devices import resolve_device
    from ..networks import load_model

    return load_model(path, map_location=resolve_device(device, "--device"))
