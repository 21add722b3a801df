"""Image loading and saving: any Pillow-readable image in, RGB float tensors out; atomic writes."""

from __future__ import annotations

import glob
import os
import socket
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .png16 import PNGError, png16_colour_type, read_png16, write_png16

__all__ = ["load_image", "save_image", "resize_image", "as_image", "atomic_write", "ImageLoadError", "ImageArg"]

PathLike = Union[str, os.PathLike]
ImageArg = Union[torch.Tensor, str, os.PathLike]  # an image argument of the API: a tensor or a path


class ImageLoadError(ValueError):
    """An image file could not be read (the message names the file and the reason)."""


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> float32 (H, W, 3) in [0, 1]; alpha is composited over white."""
    mode = img.mode
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit grayscale
        a = np.asarray(img, dtype=np.float32) / 65535.0
        return np.repeat(a[..., None], 3, axis=2)
    if mode == "I":  # 32-bit int: Pillow's 16-bit PNG path often lands here
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
        return np.repeat((np.clip(a, 0, top) / top).astype(np.float32)[..., None], 3, axis=2)
    if mode == "F":
        a = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
        return np.repeat(a[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        rgb, alpha = rgba[..., :3], rgba[..., 3:]
        return rgb * alpha + (1.0 - alpha)
    if mode == "1" or mode == "L":
        a = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        return np.repeat(a[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _png16_to_rgb(samples: np.ndarray, colour_key: Optional[np.ndarray]) -> np.ndarray:
    """:func:`~pytexsynth.png16.read_png16`'s samples -> float32 (H, W, 3), alpha (or the tRNS
    colour key) composited over white, as for 8-bit images."""
    channels = samples.shape[2]
    colour = samples[..., :1].repeat(3, axis=2) if channels in (1, 2) else samples[..., :3]
    if channels in (2, 4):
        alpha = samples[..., -1:]
        return colour * alpha + (1.0 - alpha)
    if colour_key is not None:
        transparent = np.all(samples == colour_key, axis=2, keepdims=True)
        return np.where(transparent, np.float32(1.0), colour)
    return colour


def load_image(path: PathLike, size: Optional[Union[int, Tuple[int, int]]] = None,
               device: Union[str, torch.device, None] = None) -> torch.Tensor:
    """Reads an image as a (1, 3, H, W) float32 RGB tensor in [0, 1].

    Accepts 8- and 16-bit (all 16 bits kept, colour too), grayscale, RGBA (composited over white)
    and palette images.

    Args:
        path: the image file.
        size: None keeps the size; an int scales the longer side to it (aspect kept);
            (H, W) resizes exactly.
        device: where the tensor goes.

    Raises:
        ImageLoadError: the file is missing or is not a readable image; the message names it.
    """
    p = Path(path)
    if not p.exists():
        raise ImageLoadError(f"cannot read image {str(p)!r}: no such file")
    if p.is_dir():
        raise ImageLoadError(f"cannot read image {str(p)!r}: it is a directory")
    try:
        with open(p, "rb") as fh:
            colour_png16 = png16_colour_type(fh.read(26))
            fh.seek(0)
            if colour_png16 in (2, 4, 6):  # 16-bit colour or grey+alpha: Pillow would keep 8 bits
                arr = _png16_to_rgb(*read_png16(fh))
            else:
                with Image.open(fh) as img:
                    img.load()
                    arr = _to_rgb_array(img)
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"cannot read image {str(p)!r}: it declares more pixels than Pillow's safety limit "
                             f"({Image.MAX_IMAGE_PIXELS} x 2): {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, PNGError) as exc:
        raise ImageLoadError(f"cannot read image {str(p)!r}: {exc}") from exc
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).unsqueeze(0).contiguous()
    if size is not None:
        x = resize_image(x, size)
    return x.to(device) if device is not None else x


def as_image(x: ImageArg, name: str,
             device: Union[str, torch.device, None] = None) -> torch.Tensor:
    """An image argument of the API as a (1, 3, H, W) float32 tensor on ``device``.

    Takes a path (read with :func:`load_image`) or a float tensor in [0, 1] of shape (1, 3, H, W),
    (3, H, W) or (1, 1, H, W) (grayscale, repeated to RGB); ``name`` is the argument's name in
    the errors (TypeError / ValueError).
    """
    if isinstance(x, (str, os.PathLike)):
        x = load_image(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be an image tensor (1, 3, H, W) in [0, 1] or a path, got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] not in (1, 3):
        raise ValueError(f"{name} must be a (3, H, W) or (1, 3, H, W) RGB tensor in [0, 1] (or (1, 1, H, W) "
                         f"grayscale), got shape {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a float tensor in [0, 1], got {x.dtype}")
    if x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    return x.detach().expand(1, 3, -1, -1).to(device=device, dtype=torch.float32)


def _target_size(h: int, w: int, size: Union[int, Tuple[int, int]]) -> Tuple[int, int]:
    if isinstance(size, bool) or not isinstance(size, (int, tuple, list)):
        raise TypeError(f"size must be an int (longer side) or (height, width), got {size!r}")
    if isinstance(size, int):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        s = size / max(h, w)
        return max(1, round(h * s)), max(1, round(w * s))
    if len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size):
        raise ValueError(f"size must be (height, width) with positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def resize_image(x: torch.Tensor, size: Union[int, Tuple[int, int]]) -> torch.Tensor:
    """Resizes (N, C, H, W) images: an int is the longer side; antialiased when shrinking."""
    h, w = x.shape[-2:]
    th, tw = _target_size(h, w, size)
    if (th, tw) == (h, w):
        return x
    return F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False,
                         antialias=th < h or tw < w).clamp_(0.0, 1.0)


def writer_tag() -> str:
    """This process, as named in its temporary files: host and pid (a folder may be shared
    between hosts, whose pids mean nothing here)."""
    host = "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}"


def _remove_stale_temporaries(p: Path) -> None:
    """Removes the temporary files an earlier write of ``p`` on this host left when its process
    was killed (named ``.NAME.HOST-PID.*.tmp``; those of live processes, and of other hosts, stay)."""
    host = writer_tag().rsplit("-", 1)[0]
    for tmp in p.parent.glob(f".{glob.escape(p.name)}.{glob.escape(host)}-*.tmp"):
        pid = tmp.name[len(p.name) + len(host) + 3:].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (PermissionError, OSError):
            pass  # alive (another user's) or unknowable: leave it


def _fsync_folder(folder: Path) -> None:
    """Makes a rename in ``folder`` durable (where the platform lets a folder be fsynced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Writes a file atomically: ``write(fh)`` fills a temporary file in the same folder, which is
    flushed, fsynced and renamed over ``path``, and the folder is fsynced, so a reader (or a
    crash, a kill or a full disk) never sees a half-written file; on any error the temporary file
    is removed and ``path`` is left as it was. Temporaries that a killed earlier write of ``path``
    left behind are removed first. The file gets the usual permissions (0666 minus the umask).
    Parent folders are created. The one way this package writes images, models and checkpoints."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(p)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.{writer_tag()}.", suffix=".tmp", dir=str(p.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600 files
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(p.parent)
    return p


def save_image(x: torch.Tensor, path: PathLike, force: bool = False, bits: int = 8) -> Path:
    """Writes a (1, 3, H, W), (3, H, W) or (H, W) image in [0, 1] atomically (temp file + rename).

    The format follows the extension (.png, .jpg, .tif, ...); ``bits=16`` writes a 16-bit PNG (RGB,
    or grey for a one-channel or (H, W) image).

    Raises:
        FileExistsError: ``path`` exists and ``force`` is False.
    """
    p = Path(path)
    if p.exists() and not force:
        raise FileExistsError(f"{str(p)!r} exists; pass force=True (CLI: --force) to overwrite it")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"save_image: x must be a torch.Tensor, got {type(x).__name__}")
    t = x.detach().float().cpu()
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"save_image: the image holds {bad} NaN or infinite value(s) of {t.numel()}; refusing to "
                         f"write {str(p)!r} (a run whose loss became non-finite?)")
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"save_image: expects one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() == 3:
        if t.shape[0] not in (1, 3):
            raise ValueError(f"save_image: expects 1 or 3 channels, got {t.shape[0]}")
        # one channel: grey in a 16-bit PNG, RGB otherwise (as before)
        t = t[0] if (bits == 16 and t.shape[0] == 1) else t.expand(3, -1, -1).permute(1, 2, 0)
    elif t.dim() != 2:
        raise ValueError(f"save_image: expects (1, 3, H, W), (3, H, W) or (H, W), got shape {tuple(x.shape)}")
    a = t.clamp(0, 1).numpy()
    if bits == 16:
        if p.suffix.lower() != ".png":
            raise ValueError(f"save_image: bits=16 needs a .png path, got {str(p)!r}")
        return atomic_write(p, lambda fh: write_png16(fh, a))  # Pillow writes 16 bits for grey only
    if bits == 8:
        img = Image.fromarray(np.round(a * 255).astype(np.uint8))
    else:
        raise ValueError(f"save_image: bits must be 8 or 16, got {bits}")
    fmt = Image.registered_extensions().get(p.suffix.lower())
    if fmt is None:
        raise ValueError(f"save_image: unknown image extension {p.suffix!r} in {str(p)!r}; use .png, .jpg, ...")
    return atomic_write(p, lambda fh: img.save(fh, format=fmt))
