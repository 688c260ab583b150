"""roadseg's native CPU kernels (csrc/: the Winograd transforms; the fused cross-entropy, soft Dice and
argmax of bf16 logits; bf16 bilinear 2x upsampling; bf16 batch normalisation), compiled on first use
and called through ctypes.

The C++ files are built once per machine with the system compiler ($CXX, else g++; -O3 -march=native
-fopenmp, about a second) into $ROADSEG_CACHE_DIR (default ~/.cache/roadseg)/kernels/, keyed by the
source and the CPU, and loaded after PyTorch, so its OpenMP loops run on PyTorch's own worker threads.
Where there is no compiler (or ROADSEG_KERNELS=0), or building or loading fails in any way, `library()`
returns None and `why_unavailable()` says why; callers then use PyTorch's convolutions. The cache
folder is private (mode 0700, owned by the user) and a cached library the user does not own is
refused; the compile has a timeout.

Usage::

    if library() is not None:
        v = winograd_input([source(x)], n, h, w)           # (1, 36*C, tiles, 1) channels-last
        y = winograd_output(m, bias, relu=True, n=n, h=h, w=w)
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import torch

CSRC = Path(__file__).with_name("csrc")
SOURCES = (CSRC / "winograd.cpp", CSRC / "rows.cpp", CSRC / "resize.cpp", CSRC / "norm.cpp")
HEADERS = (CSRC / "common.h",)
FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17"]
_why: list[str] = []


class Source(ctypes.Structure):
    """Mirror of the C++ `Source`: one channels-last tensor, or the four phases of an upsampled map."""

    _fields_ = [("p", ctypes.c_void_p * 4), ("sn", ctypes.c_int64 * 4), ("sh", ctypes.c_int64 * 4),
                ("sw", ctypes.c_int64 * 4), ("c", ctypes.c_int64), ("phased", ctypes.c_int64)]


def cache_dir() -> Path:
    """Where compiled kernels are kept: $ROADSEG_CACHE_DIR, else $XDG_CACHE_HOME/roadseg or ~/.cache/roadseg."""
    if os.environ.get("ROADSEG_CACHE_DIR"):
        return Path(os.environ["ROADSEG_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "roadseg"


def _cpu_signature() -> str:
    """The CPU model and feature flags: a library built with -march=native only runs where they match."""
    text = ""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        text = "".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags", "Features"))}))
    except OSError:
        pass
    return platform.machine() + platform.processor() + text


COMPILE_TIMEOUT = 300  # seconds; a compile normally takes about one


def private_dir(folder: Path) -> Path:
    """`folder`, created with mode 0700 if missing; refused (OSError) unless it is owned by this user
    and writable by no one else, since a library loaded from it runs with the user's rights."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_owned(folder)
    return folder


def _check_owned(path: Path) -> None:
    """Refuse a file or folder that this user does not own, or that others may write."""
    st = path.stat()
    if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
        raise OSError(f"{path} is not private to this user (owner {st.st_uid}, mode {oct(st.st_mode & 0o777)}); "
                      "remove it")


def _build(compiler: str, out: Path) -> None:
    private_dir(out.parent)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        try:
            result = subprocess.run([compiler, *FLAGS, *map(str, SOURCES), "-o", tmp], capture_output=True, text=True,
                                    timeout=COMPILE_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise OSError(f"the compiler took over {COMPILE_TIMEOUT} s") from None
        os.chmod(tmp, 0o700)
        if result.returncode != 0:
            raise OSError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "compiler failed")
        os.replace(tmp, out)  # atomic: a concurrent process sees the old file or the finished one
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _compiler() -> str:
    return os.environ.get("CXX") or "g++"


def library_path() -> Path:
    """Where the library for these sources, compiler and CPU is (or will be) cached."""
    text = b"".join(p.read_bytes() for p in SOURCES + HEADERS)
    key = hashlib.sha256(text + " ".join(FLAGS).encode() + _compiler().encode()
                         + _cpu_signature().encode() + torch.__version__.encode()).hexdigest()[:16]
    return cache_dir() / "kernels" / f"kernels-{key}.so"


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels (built now if not cached), or None where they cannot be built or loaded."""
    if os.environ.get("ROADSEG_KERNELS", "1") == "0":
        _why.append("turned off by ROADSEG_KERNELS=0")
        return None
    compiler = _compiler()
    if shutil.which(compiler) is None:
        _why.append(f"no C++ compiler ('{compiler}') on PATH")
        return None
    try:
        path = library_path()
        private_dir(path.parent)
        if not path.exists():
            _build(compiler, path)
        _check_owned(path)
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:  # a damaged cached file: build it again, once
            _build(compiler, path)
            lib = ctypes.CDLL(str(path))
    except Exception as e:  # anything at all (a missing csrc, a failing compiler, a foreign file): fall back
        _why.append(f"could not build or load {', '.join(p.name for p in SOURCES)}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}")
        return None
    ptr, i64, n = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for name in ("winograd_input", "concat_channels"):
        getattr(lib, name).argtypes = [ctypes.POINTER(Source), n, i64, i64, i64, ptr, n]
    lib.winograd_output.argtypes = [ptr, ptr, i64, n, i64, i64, i64, ptr, n]
    lib.winograd_output_grad.argtypes = [ptr, i64, i64, i64, i64, ptr, n]
    lib.softmax_cross_entropy_bf16.argtypes = [ptr, ptr, ptr, i64, i64, i64, ptr, ptr, n]
    lib.softmax_cross_entropy_bf16.restype = i64
    lib.argmax_bf16.argtypes = [ptr, i64, i64, ptr, n]
    lib.dice_sums_bf16.argtypes = [ptr, ptr, i64, i64, i64, ptr, n]
    lib.dice_sums_bf16.restype = i64
    lib.dice_grad_bf16.argtypes = [ptr, ptr, i64, i64, i64, ptr, ptr, ptr, n]
    lib.dice_grad_bf16.restype = None
    for name in ("upsample2x_bf16", "upsample2x_backward_bf16"):
        getattr(lib, name).argtypes = [ptr, i64, i64, i64, i64, ptr, n]
    lib.rows_sums_bf16.argtypes = [ptr, ptr, i64, i64, ptr, ptr, ptr, n]
    lib.rows_affine_bf16.argtypes = [ptr, ptr, i64, i64, ptr, ptr, ptr, ptr, n]
    return lib


def why_unavailable() -> str:
    """Why `library()` returned None ('' if it did not)."""
    return _why[-1] if _why else ""


def swap_modules(model: torch.nn.Module, plain: type, native: type) -> int:
    """Make the model's modules of exactly class `plain` the subclass `native` (the same parameters,
    buffers and state_dict keys), in place; returns how many (0 without the kernels)."""
    if library() is None:
        return 0
    count = 0
    for m in model.modules():
        if type(m) is plain:
            m.__class__ = native
            count += 1
    return count


def source(t: torch.Tensor) -> Source:
    """A Source for an (N,C,H,W) fp32 tensor whose channel stride is 1 (channels-last, or a crop of one)."""
    return phased_source([t], phased=False)


def phased_source(phases: Sequence[torch.Tensor], phased: bool = True) -> Source:
    """A Source for a 2x upsampled map given as its four phases (even/even, even/odd, odd/even, odd/odd)."""
    s = Source()
    s.c, s.phased = phases[0].shape[1], int(phased)
    for k, t in enumerate(phases):
        if t.dtype != torch.float32 or t.stride(1) != 1 or t.device.type != "cpu":
            raise ValueError("kernel sources must be fp32 CPU tensors with channel stride 1 (channels-last)")
        s.p[k] = t.data_ptr()
        s.sn[k], s.sh[k], s.sw[k] = t.stride(0), t.stride(2), t.stride(3)
    return s


def _sources(srcs: Sequence[Source]) -> ctypes.Array:
    return (Source * len(srcs))(*srcs)


def _nhwc(n: int, c: int, h: int, w: int) -> torch.Tensor:
    return torch.empty((n, c, h, w), memory_format=torch.channels_last)  # NHWC memory, not a view


def tiles(n: int, h: int, w: int) -> int:
    """Number of 4x4 output tiles of an n x h x w map (partial tiles at the edges count)."""
    return n * ((h + 3) // 4) * ((w + 3) // 4)


def _check16(*channels: int) -> None:
    if any(c % 16 for c in channels):
        raise ValueError(f"the Winograd kernels take channel counts that are multiples of 16, not {channels}")


def winograd_input(srcs: Sequence[Source], n: int, h: int, w: int) -> torch.Tensor:
    """B^T d B of every 6x6 tile of the sources (concatenated along channels; each a multiple of 16),
    as a (1, 36*C, tiles, 1) channels-last tensor: the input of the 36-group 1x1 product."""
    _check16(*(s.c for s in srcs))
    c = sum(s.c for s in srcs)
    v = torch.empty((1, 36 * c, tiles(n, h, w), 1), memory_format=torch.channels_last)
    library().winograd_input(_sources(srcs), len(srcs), n, h, w, v.data_ptr(), torch.get_num_threads())
    return v


def winograd_output(m: torch.Tensor, bias: torch.Tensor | None, relu: bool, n: int, h: int, w: int) -> torch.Tensor:
    """A^T m A (+ bias, ReLU) of the (1, 36*K, tiles, 1) channels-last products: the (N,K,H,W) output."""
    if m.stride(1) != 1:
        m = m.contiguous(memory_format=torch.channels_last)
    k = m.shape[1] // 36
    _check16(k)
    y = _nhwc(n, k, h, w)
    library().winograd_output(m.data_ptr(), None if bias is None else bias.data_ptr(), k, int(relu), n, h, w,
                              y.data_ptr(), torch.get_num_threads())
    return y


def winograd_output_grad(gy: torch.Tensor) -> torch.Tensor:
    """A gY A^T of every 4x4 block of an (N,K,H,W) output gradient, as (1, 36*K, tiles, 1) channels-last:
    the adjoint of winograd_output, for the weight gradient."""
    n, k, h, w = gy.shape
    _check16(k)
    gy = gy.contiguous(memory_format=torch.channels_last)
    gm = torch.empty((1, 36 * k, tiles(n, h, w), 1), memory_format=torch.channels_last)
    library().winograd_output_grad(gy.data_ptr(), k, n, h, w, gm.data_ptr(), torch.get_num_threads())
    return gm


def concat_channels(srcs: Sequence[Source], n: int, h: int, w: int) -> torch.Tensor:
    """The sources concatenated along channels as one (N,C,H,W) channels-last tensor."""
    y = _nhwc(n, sum(s.c for s in srcs), h, w)
    library().concat_channels(_sources(srcs), len(srcs), n, h, w, y.data_ptr(), torch.get_num_threads())
    return y
