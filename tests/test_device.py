"""Device choice and the CPU allocator setting (checked in fresh processes: it is process-wide)."""
import json
import os
import platform
import subprocess
import sys

import pytest

from roadseg.device import pick_device
from roadseg.errors import InputError

PROBE = """
import json, resource, torch
from roadseg.device import keep_freed_memory
kept = keep_freed_memory()
conv = torch.nn.Conv2d(16, 16, 3, padding=1)
faults = []
for _ in range(6):  # a training step's pattern: large activations made, used, freed, made again
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.rand(4, 16, 384, 384, requires_grad=True)  # 38 MB: above glibc's mmap threshold
    conv(torch.relu(conv(x))).sum().backward()
    del x
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": faults}))
"""


def _probe(env_value: str) -> dict:
    env = {**os.environ, "ROADSEG_KEEP_FREED_MEMORY": env_value}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_memory_is_reused_without_page_faults():
    on, off = _probe("1"), _probe("0")
    assert on["kept"] and not off["kept"]
    pages = 38 * 2**20 // 4096  # one activation
    # After two warm-up steps: the system default faults every page of every activation in again
    # (~19 activations' worth a step here); kept memory is reused. A late reshuffle of the heap may
    # still fault one activation in some steps (seen: up to two of the four steps; three made the
    # earlier bound of 2 activations in all fail once in a while), so the bound is relative.
    assert min(off["faults"][2:]) > 2 * pages
    assert sum(on["faults"][2:]) < sum(off["faults"][2:]) / 4


RELEASE_PROBE = """
import json, torch
from roadseg.device import keep_freed_memory, release_freed_memory
def rss_mb():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
before = release_freed_memory()  # nothing kept yet: nothing to do
keep_freed_memory()
x = torch.ones(100 * 2**20)  # 400 MB, touched
del x
kept = rss_mb()
released = release_freed_memory()
print(json.dumps({"before": before, "released": released, "kept": kept, "after": rss_mb()}))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_kept_memory_can_be_released():
    out = subprocess.run([sys.executable, "-c", RELEASE_PROBE], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert not r["before"] and r["released"]
    assert r["after"] < r["kept"] - 300  # the freed 400 MB stayed in the process until released


def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    with pytest.raises(InputError):
        pick_device("nonsense")


def test_pre_ampere_gpus_get_fp16_not_emulated_bf16(monkeypatch):
    """Issue 14, item 10: is_bf16_supported() counts emulation; the compute capability decides."""
    import torch
    from roadseg.device import amp_dtype
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    for capability, dtype in (((7, 5), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert amp_dtype(torch.device("cuda", 0)) == dtype


def test_cpu_name_is_the_model_and_its_bf16_hardware():
    from pathlib import Path

    from roadseg.device import cpu_has_native_bf16, cpu_name
    name = cpu_name()
    info = Path("/proc/cpuinfo")
    models = [ln.split(":", 1)[1].strip() for ln in info.read_text().splitlines()
              if ln.startswith("model name")] if info.exists() else []
    if models:
        assert name.startswith(models[0])
    assert (" with " in name) == cpu_has_native_bf16()
