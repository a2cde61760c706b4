"""Progress lines for long runs: on a terminal only, with elapsed time and time left."""
from __future__ import annotations

import sys
import time


class Progress:
    """Report the fraction of ``total`` work done; quiet unless ``stream`` is a terminal."""

    def __init__(self, total: float, stream=None, enabled: bool | None = None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total, self.done, self.start = float(total), 0.0, time.perf_counter()

    def update(self, work: float, label: str) -> None:
        self.done += work
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        left = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        print(f"[{100 * frac:5.1f}%] {label} | {elapsed:6.1f} s elapsed, ~{left:6.1f} s left",
              file=self.stream, flush=True)
