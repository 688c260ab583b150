"""Choosing the compute device and mixed precision; keeping the CPU allocator from thrashing.

Usage: ``dev = pick_device("auto"); ctx = autocast(dev, enabled=True); keep_freed_memory()``
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
import platform

import torch

from .errors import InputError


def pick_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(None, f"device '{name}' asked for but no CUDA GPU is available", "use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(None, f"unknown device '{name}'", "use auto, cpu or cuda") from None


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 is emulated
    and slower than fp32. Asked once: autocast consults it every training step."""
    return bool(_bf16_units())


def _bf16_units() -> list[str]:
    """The bf16 hardware this CPU has, as torch reports it: AMX, AVX512-BF16, both or neither."""
    checks = (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported"))
    return [label for label, check in checks if getattr(torch.cpu, check, lambda: False)()]


@functools.cache
def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo's where there is one, else the platform's) and its bf16
    hardware, e.g. "AMD EPYC with AVX512-BF16": benchmark figures name the machine they came from."""
    try:
        lines = open("/proc/cpuinfo", encoding="utf-8").read().splitlines()
    except OSError:
        lines = []
    names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    name = names[0] if names else platform.processor() or platform.machine()
    found = _bf16_units()
    return name + (f" with {' and '.join(found)}" if found else "")


def cuda_has_native_bf16(device: torch.device) -> bool:
    """Whether the GPU multiplies bf16 in hardware (compute capability 8.0, Ampere, or newer); recent
    torch's is_bf16_supported() also counts emulation, which is slower than fp16 with a scaler."""
    return torch.cuda.get_device_capability(device)[0] >= 8


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype for `device`: on CUDA bfloat16 from Ampere on, else float16 (with a
    gradient scaler); on the CPU bfloat16 where the hardware has it, else None (fp32)."""
    if device.type == "cuda":
        return torch.bfloat16 if cuda_has_native_bf16(device) else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """An autocast context (see amp_dtype) when enabled, a no-op where there is no fast low precision."""
    dtype = amp_dtype(device)
    if not enabled or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters
_kept = False


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library where it is glibc on Linux (opened once), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the OS.

    PyTorch's CPU tensors come from malloc, and glibc serves every block over 32 MB with a fresh
    mmap that is unmapped again on free, so each large activation of every training step costs
    page faults and the kernel zeroing the pages again: at 352x480 that was about a third of a
    training step. With mmap off and trimming off, freed blocks stay in the heap and are reused
    (the process keeps its peak memory until it exits). Only on Linux with glibc; a no-op elsewhere
    or when ROADSEG_KEEP_FREED_MEMORY=0. Returns whether the setting is in effect."""
    global _kept
    if _kept:
        return True
    libc = _glibc()
    if os.environ.get("ROADSEG_KEEP_FREED_MEMORY", "1") == "0" or libc is None:
        return False
    _kept = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, -1))
    return _kept


def release_freed_memory() -> bool:
    """Hand the heap's free pages back to the OS (glibc's malloc_trim) where keep_freed_memory() is in
    effect: for a process that moves between workloads of different shapes (a benchmark running one
    engine after another), whose kept blocks would otherwise add up (speed.py at 352x480 grew to
    22 GB and was killed for memory). Returns whether anything was done."""
    if not _kept:
        return False
    gc.collect()  # tensors held only by reference cycles
    _glibc().malloc_trim(0)
    return True
