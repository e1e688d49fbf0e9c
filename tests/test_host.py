"""workflows.host: a CPU process keeps freed memory, so large tensors stop re-faulting pages."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Page faults of an iteration that allocates and frees two 64 MiB tensors, once it has run a few
# times (the heap settles after two or three rounds).
CODE = """
import resource, sys, torch
from workflows.host import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory() and keep_freed_memory()
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(16 * 2**20)
    y = x + 1
    del x, y
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print([faults() for _ in range(5)][-1])
"""


def _steady_faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", CODE, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_keep_freed_memory_reuses_large_blocks() -> None:
    default = _steady_faults("default")
    kept = _steady_faults("keep")
    # default glibc: each 64 MiB block is a fresh mmap (16,384 pages each, or 32 huge pages)
    assert kept <= 16 < default, (kept, default)


def test_cpu_extractor_cache_applies_it() -> None:
    code = (
        "import torch, workflows.host as h; from workflows.pair import ExtractorCache;"
        "from workflows.weights import resolve_weights;"
        "ExtractorCache(resolve_weights('vgg16', 'random'), torch.device('cpu'));"
        "print(h._tuned)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-1] == str(sys.platform.startswith("linux"))
