"""``torchrun --nproc-per-node N -m pytexsynth texture|stylize ...``: the process group of the
optimisation commands and which rank writes.

Under torchrun (WORLD_SIZE > 1) ``texture`` and ``stylize`` join a process group (NCCL on CUDA,
each rank on the GPU of its LOCAL_RANK; gloo on the CPU) whose collectives time out after
PYTEXSYNTH_DIST_TIMEOUT seconds (default 600), so a rank that dies never leaves the others
waiting for ever (torchrun itself stops the other ranks when one fails). The synthesis then
deals its tiles out to the ranks (:mod:`pytexsynth.synthesis.tiled`); every rank computes the
same image, and only rank 0 shows progress and writes files.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os

__all__ = ["process_group", "writes_files", "DISTRIBUTED_COMMANDS"]

DISTRIBUTED_COMMANDS = ("texture", "stylize")


def writes_files() -> bool:
    """Whether this process writes outputs: rank 0, or a process outside any process group."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


@contextlib.contextmanager
def process_group(args: argparse.Namespace):
    """Joins torchrun's process group for the command of ``args`` (when WORLD_SIZE > 1), quiet
    on every rank but 0, and leaves it at the end."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or getattr(args, "command", None) not in DISTRIBUTED_COMMANDS:
        yield
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        yield
        return
    device = getattr(args, "device", None)
    cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    if cuda and device is None:
        args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    timeout = datetime.timedelta(seconds=float(os.environ.get("PYTEXSYNTH_DIST_TIMEOUT", "600")))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
    if dist.get_rank() != 0:
        args.quiet = True
    try:
        yield
    finally:
        dist.destroy_process_group()
