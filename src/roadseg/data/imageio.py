"""Reading images and masks from disk safely, and writing files atomically.

Every decode error becomes one InputError line naming the file. Huge declared sizes
(decompression bombs) are refused before any pixels are decoded.

Usage: ``rgb = read_image("a.png"); ids = read_mask("a_mask.png"); atomic_save_png(ids, "out.png")``
"""
from __future__ import annotations

import errno
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

from ..errors import InputError

MAX_PIXELS = 80_000_000  # about 9000x9000; larger declared sizes are refused
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def _open(path: Path, allow_jpeg: bool) -> Image.Image:
    """Open and fully decode an image file, turning every failure into an InputError."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise InputError(path, "file not found", "check the path") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, not an image file") from None
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or e})") from None
    is_png = head.startswith(PNG_SIGNATURE)
    if not is_png and not (allow_jpeg and head.startswith(JPEG_SIGNATURE)):
        kinds = "a PNG or JPEG image" if allow_jpeg else "a PNG image"
        what = "is empty" if not head else f"is not {kinds} (wrong file signature)"
        raise InputError(path, what, "re-export it as PNG or remove it from the dataset")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            w, h = image.size
            if w * h > MAX_PIXELS:
                raise InputError(path, f"declares {w}x{h} pixels, more than the limit of {MAX_PIXELS:,}",
                                 "resize it first; it may be a decompression bomb")
            image.load()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(path, "declares an enormous size (decompression bomb)", "remove it") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputError(path, f"is corrupt or truncated ({e})", "re-export or remove it") from None
    return image


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright, as stored; 2..8 = mirrored and/or rotated)."""
    try:
        return int(image.getexif().get(0x0112, 1) or 1)
    except Exception:  # a damaged EXIF block: treat the pixels as upright
        return 1


def read_image(path: str | Path) -> np.ndarray:
    """Decode an RGB, RGBA, greyscale or palette image (8 or 16 bit) to an HxWx3 uint8 array, turned
    as its EXIF orientation says (as every image viewer shows a phone or dashcam JPEG)."""
    path = Path(path)
    image = _open(path, allow_jpeg=True)
    if exif_orientation(image) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode == "F":
        grey = np.clip(np.rint(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def read_mask(path: str | Path) -> np.ndarray:
    """Decode a mask to an HxW array of class ids.

    Single-channel (L, P, 16-bit) masks hold the ids; RGB/RGBA masks hold the id in channel 0
    (CARLA), and the max over the colour channels is taken, as the notebook did.
    """
    path = Path(path)
    return mask_ids(_open(path, allow_jpeg=False), path)


def mask_ids(image: Image.Image, path: str | Path) -> np.ndarray:
    """The HxW uint8 class ids of an already decoded mask image (see read_mask); `path` names it in errors."""
    if image.mode in ("L", "P", "1"):
        arr = np.asarray(image if image.mode != "1" else image.convert("L"))
    elif image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image, dtype=np.int64)
    elif image.mode == "LA":
        arr = np.asarray(image)[:, :, 0]
    elif image.mode in ("RGB", "RGBA"):
        arr = np.asarray(image)[:, :, :3].max(axis=2)
    else:
        raise InputError(path, f"has image mode {image.mode}, which is not a mask encoding",
                         "save masks as 8-bit index PNGs or RGB(A) with the id in channel 0")
    if arr.max(initial=0) > 255 or arr.min(initial=0) < 0:
        raise InputError(path, f"holds ids up to {int(arr.max())}, above 255",
                         "roadseg masks hold ids 0..255")
    return arr.astype(np.uint8)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_error(path: Path, error: BaseException) -> InputError:
    """The one line for a file that cannot be written, naming the actual cause."""
    code = getattr(error, "errno", None)
    text = str(error)
    if code == errno.ENOSPC or (isinstance(error, RuntimeError) and "write" in text.lower()):
        what, hint = "no space left on the device", "free disk space"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        what, hint = f"{error.strerror.lower() if getattr(error, 'strerror', None) else 'not writable'}", \
            "choose a writable output folder"
    elif code == errno.ENAMETOOLONG:
        what, hint = "the name is too long for the filesystem", "choose a shorter name"
    elif code in (errno.ENOTDIR, errno.EEXIST):
        what, hint = "a file stands where a folder is needed", "choose another output path"
    else:
        what, hint = getattr(error, "strerror", None) or text.strip().splitlines()[0][:120], "check the output path"
    return InputError(path, f"cannot be written ({what})", f"{hint}; any earlier version is intact")


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside `path`, then rename it over `path`.

    A crash at any moment leaves either the old file or the new one, never a torn file. A full or
    read-only disk becomes an InputError; the old file is left as it was."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except (OSError, RuntimeError) as e:  # torch.save reports a full disk as a RuntimeError
        raise write_error(path, e) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def atomic_save_png(array: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 array (HxW or HxWx3/4) as a PNG, atomically."""
    image = Image.fromarray(np.ascontiguousarray(array))
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
