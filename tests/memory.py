"""How much memory a block of code takes at its peak: resident memory (Linux) and Python's own allocations.

Resident memory sees what tracemalloc cannot (Pillow's and zlib's buffers); tracemalloc sees Python and
NumPy allocations exactly, however much free memory the process already held. A bound on either is a
bound on memory, not a timing assertion.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024


@dataclass
class PeakMemory:
    resident: int = 0  # bytes above the resident size at the start (VmHWM after minus VmRSS before)
    traced: int = 0  # tracemalloc's peak, bytes

    def __str__(self) -> str:
        return f"peak resident rise {self.resident / MB:.1f} MB, peak traced {self.traced / MB:.1f} MB"


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


@contextmanager
def peak_memory() -> Iterator[PeakMemory]:
    peak = PeakMemory()
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark restarts from the resident size now
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        peak.resident = max(0, _status_kib("VmHWM") - before) * 1024
