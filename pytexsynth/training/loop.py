"""One training loop for every network of the package (texture, stylisation, inverse networks).

:func:`train` knows nothing about what it trains: it gets a model, a loss callable and a batch
source, and does the rest the same way for all of them: Adam with a learning-rate schedule, a
progress bar with the loss, atomic checkpoints every N steps, ``resume=`` that continues exactly
as an uninterrupted run would (model, optimiser, scheduler, every RNG, the batch generator, the
step), and data-parallel training through torch.distributed when launched with torchrun.

Determinism: batches are drawn from a per-rank ``torch.Generator`` (seeded from ``seed`` and the
rank) that the loop owns and checkpoints, and the global RNGs (torch CPU and CUDA, numpy,
Python) are checkpointed too, so a loss that uses them resumes identically as well.

Distributed: when the environment says WORLD_SIZE > 1 (torchrun) and no process group exists,
one is created from the environment (NCCL on CUDA, gloo on CPU) and destroyed at the end
(:func:`process_group`, which the trainers use too). The
model is wrapped in DistributedDataParallel (gradients averaged over ranks); each rank draws its
own batches; rank 0 alone writes checkpoints, holding every rank's RNG states.
"""

from __future__ import annotations

import math
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import torch
import torch.distributed as dist
from torch import nn

from ..devices import resolve_device
from ..networks.base import SavableNetwork, check_plain, unwrap
from ..ops.checks import check_count
from .checkpoint import CHECKPOINT_FORMAT, load_checkpoint, refuse_foreign_file, settings_changes, write_checkpoint
from .rng import rng_state, set_rng_state

__all__ = ["train", "TrainResult", "load_checkpoint", "process_group", "default_device", "CHECKPOINT_FORMAT"]

LossFn = Callable[[nn.Module, Any], Union[torch.Tensor, Tuple[torch.Tensor, Dict[str, float]]]]
BatchFn = Callable[[torch.Generator, int], Any]
_SCHEDULES = ("constant", "step", "cosine")


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained (unwrapped) model, the rank-averaged loss of
    every step from the start (resumed runs included), and the number of steps done."""

    model: nn.Module
    losses: List[float] = field(default_factory=list)
    step: int = 0
    metadata: Dict[str, Any] = field(default_factory=dict)  # as recorded, with any resume_anyway changes


# ---- distributed --------------------------------------------------------------------------------
@contextmanager
def process_group() -> Iterator[Tuple[int, int]]:
    """(rank, world size) of this process. Under torchrun (WORLD_SIZE > 1) with no process group
    yet, one is created from the environment (NCCL on CUDA, gloo on CPU) and destroyed on exit,
    also on an error; an existing group is used and left alone. The one place the package sets
    up and tears down torch.distributed (the trainers enter it around :func:`train`, which then
    finds the group made)."""
    owns = False
    if not dist.is_available():
        rank, world = 0, 1
    elif dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo", init_method="env://")
        rank, world, owns = dist.get_rank(), dist.get_world_size(), True
    else:
        rank, world = 0, 1
    try:
        yield rank, world
    finally:
        if owns:
            dist.destroy_process_group()


def default_device(world: int) -> torch.device:
    """CUDA when available (the LOCAL_RANK device under torchrun), else the CPU."""
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else torch.cuda.current_device()
        return torch.device("cuda", local)
    return torch.device("cpu")


# ---- arguments and schedule --------------------------------------------------------------------
def _make_scheduler(opt: torch.optim.Optimizer, schedule: str, steps: int, decay: float,
                    decay_every: Optional[int]) -> torch.optim.lr_scheduler.LRScheduler:
    if schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=decay_every or max(1, steps // 4), gamma=decay)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def _check_args(steps: int, lr: float, lr_schedule: str, lr_decay: float, checkpoint_every: int) -> None:
    check_count(steps, "train: steps")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"train: lr must be a positive number, got {lr!r}")
    if lr_schedule not in _SCHEDULES:
        raise ValueError(f"train: lr_schedule must be one of {_SCHEDULES}, got {lr_schedule!r}")
    if not 0 < lr_decay <= 1:
        raise ValueError(f"train: lr_decay must be in (0, 1], got {lr_decay!r}")
    check_count(checkpoint_every, "train: checkpoint_every")


@dataclass
class _Session:
    """What one run of :func:`train` checkpoints and restores."""

    model: nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    batch_gen: torch.Generator
    rank: int
    world: int
    checkpoint: Union[str, os.PathLike, None]
    metadata: Dict[str, Any]
    config: Dict[str, Any]  # the settings a resumed run must share (the optimiser's and the trainer's)

    def restore(self, path, device, resume_anyway: bool) -> Tuple[int, List[float]]:
        """Loads a checkpoint into the model, optimiser, scheduler and RNGs: (step, losses). A
        checkpoint of other settings is refused, or with ``resume_anyway`` the change is recorded
        in the metadata."""
        ck = load_checkpoint(path, map_location=device)
        model = self.model
        if isinstance(model, SavableNetwork) and ck.get("architecture") not in (None, model.architecture()):
            raise ValueError(f"train: checkpoint {path} is of {ck['architecture']}, the model is "
                             f"{model.architecture()}")
        changes = settings_changes(ck["config"], self.config) if "config" in ck else {}
        if changes and not resume_anyway:
            shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items())
            raise ValueError(f"train: checkpoint {path} was trained with other settings ({shown}); use the same "
                             "settings, or resume_anyway=True (CLI: --resume-anyway) to continue with these")
        history = list(ck.get("metadata", {}).get("resumed_with_changes", []))
        if changes:
            history.append({"step": int(ck["step"]), "changes": changes})
        if history:
            self.metadata["resumed_with_changes"] = history
        model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        rngs = ck["rng"]
        if len(rngs) != self.world:
            warnings.warn(f"train: checkpoint {path} was written by {len(rngs)} processes, this run has {self.world}; "
                          "ranks without a saved RNG state are re-seeded (the run is not bit-identical)",
                          RuntimeWarning, stacklevel=3)
        if self.rank < len(rngs):
            set_rng_state(rngs[self.rank], self.batch_gen)
        return int(ck["step"]), list(ck["losses"])

    def save(self, step: int, losses: List[float]) -> None:
        """Rank 0 writes the checkpoint (atomically) with every rank's RNG state."""
        rng = rng_state(self.batch_gen)
        if self.world > 1:
            rng_all: List[Any] = [None] * self.world
            dist.all_gather_object(rng_all, rng)
        else:
            rng_all = [rng]
        if self.rank == 0 and self.checkpoint is not None:
            data = {"step": step, "losses": list(losses),
                    "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                    "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(), "rng": rng_all,
                    "world_size": self.world, "metadata": dict(self.metadata), "config": dict(self.config)}
            if isinstance(self.model, SavableNetwork):
                data["architecture"] = self.model.architecture()
            write_checkpoint(data, self.checkpoint)
        if self.world > 1:
            dist.barrier()


def _step(runner: nn.Module, loss_fn: LossFn, batch, session: _Session, step: int, lr: float):
    """One optimisation step: (the loss averaged over ranks, the loss's named parts)."""
    out = loss_fn(runner, batch)
    loss, parts = out if isinstance(out, tuple) else (out, {})
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"train: loss_fn must return a scalar tensor, got {type(loss).__name__}")
    if not torch.isfinite(loss):
        raise FloatingPointError(f"train: the loss is {loss.item()} at step {step}; lower lr (now {lr})")
    session.opt.zero_grad(set_to_none=True)
    loss.backward()
    session.opt.step()
    session.sched.step()
    value = loss.detach().double()
    if session.world > 1:
        dist.all_reduce(value)
        value /= session.world
    return float(value), parts


@contextmanager
def _progress_bar(show: bool, steps: int, start: int, desc: str):
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start, desc=desc, dynamic_ncols=True)
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


# ---- the loop -----------------------------------------------------------------------------------
def train(model: nn.Module, loss_fn: LossFn, batches: BatchFn, *, steps: int, lr: float = 1e-2,
          lr_schedule: str = "step", lr_decay: float = 0.5, lr_decay_every: Optional[int] = None,
          betas: Tuple[float, float] = (0.9, 0.999), checkpoint: Union[str, os.PathLike, None] = None,
          checkpoint_every: int = 100, resume: Union[bool, str, os.PathLike, None] = None, seed: int = 0,
          device: Union[str, torch.device, None] = None, progress: bool = True, desc: str = "training",
          callback: Optional[Callable[[int, float], None]] = None,
          metadata: Optional[Dict[str, Any]] = None, settings: Optional[Dict[str, Any]] = None,
          resume_anyway: bool = False) -> TrainResult:
    """Trains ``model`` to minimise ``loss_fn`` over batches, with checkpoints, resume and DDP.

    Args:
        model: the network (a :class:`~pytexsynth.networks.SavableNetwork` records its
            architecture in the checkpoints, so :func:`pytexsynth.load_model` reads them).
        loss_fn: ``loss_fn(model, batch) -> loss`` (a scalar tensor) or ``(loss, parts)``. It gets
            the model to call (the DDP wrapper when distributed), so gradients are synchronised.
        batches: ``batches(generator, step) -> batch``; draw all randomness from ``generator``
            (a CPU torch.Generator owned and checkpointed by the loop, different on each rank).
        steps: total number of optimisation steps (a resumed run stops at the same total).
        lr, betas: Adam's settings.
        lr_schedule: "step" (times ``lr_decay`` every ``lr_decay_every`` steps, default steps/4),
            "cosine" (to 0 at ``steps``) or "constant".
        checkpoint: file to write (atomically) every ``checkpoint_every`` steps and at the end.
        resume: a checkpoint file to continue from, or True for ``checkpoint`` when it exists.
            Continues exactly as an uninterrupted run (bitwise on CPU with the same settings).
        seed: seeds the model-independent randomness (the batch generator, per rank).
        device: where to train; default CUDA (the LOCAL_RANK device under torchrun) if available.
        progress: show a tqdm bar with the loss (rank 0 only).
        callback: ``callback(step, loss)`` after every step (rank 0 only).
        metadata: plain values stored in the checkpoints (the trainer's settings and facts such
            as the number of training images).
        settings: the trainer's settings a resume must share (default: ``metadata``); with the
            optimiser's (lr, schedule, betas, seed) they are the run's ``config``.
        resume_anyway: resume a checkpoint of other settings (see ``config``); the changes are
            recorded in the metadata (``resumed_with_changes``) and so in the saved model.

    Returns:
        A :class:`TrainResult`.
    """
    _check_args(steps, lr, lr_schedule, lr_decay, checkpoint_every)
    if metadata is not None:
        check_plain(metadata, "train: metadata")
    if resume is True:
        if checkpoint is None:
            raise ValueError("train: resume=True needs checkpoint= (the file to resume from)")
        resume = checkpoint if Path(checkpoint).is_file() else None
    if checkpoint is not None and (not resume or Path(resume).resolve() != Path(checkpoint).resolve()):
        refuse_foreign_file(checkpoint)  # the run will write over it
    with process_group() as (rank, world):
        device = resolve_device(device) if device is not None else default_device(world)
        model = unwrap(model).to(device)
        batch_gen = torch.Generator()
        batch_gen.manual_seed(int(seed) * 1_000_003 + rank)
        opt = torch.optim.Adam(model.parameters(), lr=lr, betas=betas)
        config = {"lr": float(lr), "lr_schedule": lr_schedule, "lr_decay": float(lr_decay),
                  "lr_decay_every": lr_decay_every, "betas": [float(b) for b in betas], "seed": int(seed),
                  **((metadata if settings is None else settings) or {})}
        session = _Session(model, opt, _make_scheduler(opt, lr_schedule, steps, lr_decay, lr_decay_every),
                           batch_gen, rank, world, checkpoint, dict(metadata or {}), config)
        start, losses = session.restore(resume, device, resume_anyway) if resume else (0, [])
        if start > steps:
            raise ValueError(f"train: checkpoint {resume} is at step {start}, beyond steps={steps}; steps is the "
                             f"total number of steps (at least {start} to resume it)")
        runner: nn.Module = model
        if world > 1:
            ddp_kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
            runner = nn.parallel.DistributedDataParallel(model, **ddp_kwargs)
        model.train()
        with _progress_bar(progress and rank == 0, steps, start, desc) as bar:
            for step in range(start, steps):
                value, parts = _step(runner, loss_fn, batches(batch_gen, step), session, step, lr)
                losses.append(value)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{value:.4g}", **{k: f"{float(v):.3g}" for k, v in parts.items()})
                if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
                    session.save(step + 1, losses)
                if callback is not None and rank == 0:
                    callback(step + 1, value)
            if checkpoint is not None:
                session.save(steps, losses)
        return TrainResult(model=model, losses=losses, step=max(start, steps), metadata=session.metadata)
