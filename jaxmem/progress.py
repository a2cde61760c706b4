"""Progress bars for long runs (``tqdm``): work done, elapsed time and time left.

A bar by default where someone watches: a terminal, or a notebook (where
``tqdm.auto`` draws a widget). Elsewhere (a batch job's log file) one plain line per
update: per chunk of training, with the share done and the time left.
``JAXMEM_PROGRESS=1`` forces the bar, ``JAXMEM_PROGRESS=0`` silences both, wherever
the caller leaves it to the default (``enabled=None``).
"""
from __future__ import annotations

import os
import sys
import time
import warnings

#: the environment variable that overrides the default: "1" (on) or "0" (off)
ENV = "JAXMEM_PROGRESS"


def in_notebook() -> bool:
    """Whether this runs in an IPython kernel (Jupyter, Colab), not a terminal."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        ip = ipython.get_ipython()
    except AttributeError:
        return False
    return ip is not None and (type(ip).__name__ == "ZMQInteractiveShell" or getattr(ip, "kernel", None) is not None)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def default_enabled(stream=None) -> bool:
    """Whether a bar shows when the caller does not say: ``$JAXMEM_PROGRESS`` if set
    ("1"/"0", also "true"/"false", "yes"/"no", "on"/"off"), else whether ``stream``
    (default stderr) is a terminal or this is a notebook."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    if value:
        warnings.warn(f"${ENV} should be 1 or 0, got {os.environ[ENV]!r}; ignoring it", stacklevel=2)
    return _isatty(stream if stream is not None else sys.stderr) or in_notebook()


class Progress:
    """A bar of ``total`` work units; ``update(work, label)`` adds ``work`` done and shows
    ``label`` (what runs now) after the bar, with elapsed time and time left.

    ``enabled``: None (default) shows the bar where ``default_enabled(stream)`` says and
    plain lines elsewhere (none with ``JAXMEM_PROGRESS=0``), True always the bar, False
    nothing. ``stream`` (default stderr) is where a text bar goes; in a
    notebook the bar is a widget. The bar closes when the work reaches ``total`` (or on
    ``close()``, or at the end of a ``with`` block).
    """

    def __init__(self, total: float, stream=None, enabled: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = default_enabled(self.stream) if enabled is None else bool(enabled)
        silenced = os.environ.get(ENV, "").strip().lower() in ("0", "false", "no", "off")
        self.lines = enabled is None and not self.enabled and not silenced
        self.total, self.done = float(total), 0.0
        self._bar = None
        self._start = time.perf_counter()
        if self.enabled:
            self._bar = self._make_bar()

    def _make_bar(self):
        if in_notebook():
            from tqdm.auto import tqdm
        else:  # a text bar on ``stream``: tqdm.auto would pick a widget it cannot write there
            from tqdm.std import tqdm
        total = self.total if self.total > 0 else None
        return tqdm(total=total, file=self.stream, unit="", unit_scale=True, dynamic_ncols=True,
                    leave=True, mininterval=0.5, smoothing=0.1,
                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")

    def update(self, work: float, label: str) -> None:
        self.done += work
        if self.lines:
            self._line(label)
        if self._bar is None:
            return
        self._bar.set_postfix_str(label, refresh=False)
        self._bar.update(work)
        if self.total > 0 and self.done >= self.total:
            self.close()

    def _line(self, label: str) -> None:
        elapsed = time.perf_counter() - self._start
        share = self.done / self.total if self.total > 0 else 0.0
        left = f", about {elapsed * (1 - share) / share:.0f} s left" if 0 < share < 1 else ""
        print(f"jaxmem: {100 * share:3.0f}% {label} ({elapsed:.0f} s{left})", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
