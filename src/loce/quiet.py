"""Keeping third-party chatter out of loce's output: C-level banners and known library warnings.

pybullet prints ``pybullet build time: ...`` from C when it is imported (and may print when it connects), which
lands inside progress bars; :func:`c_output_silenced` sends file descriptors 1 and 2 to ``/dev/null`` around
such calls.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["c_output_silenced", "note_once"]

_noted: set[str] = set()


@contextlib.contextmanager
def c_output_silenced() -> Iterator[None]:
    """Discard everything written to the process's stdout and stderr (also from C code) inside the block.

    Python exceptions still propagate; only printed text is dropped.

    Example:
        >>> with c_output_silenced():
        ...     _ = os.write(1, b"not shown: written to file descriptor 1, as C code does")
    """
    streams = [(sys.stdout, 1), (sys.stderr, 2)]
    saved = []
    with open(os.devnull, "w") as devnull:
        try:
            for stream, fd in streams:
                with contextlib.suppress(AttributeError, OSError, ValueError):
                    stream.flush()
                saved.append((fd, os.dup(fd)))
                os.dup2(devnull.fileno(), fd)
            yield
        finally:
            for stream, _ in streams:
                with contextlib.suppress(AttributeError, OSError, ValueError):
                    stream.flush()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)


def note_once(key: str, message: str) -> bool:
    """Print ``loce: note: message`` to stderr the first time ``key`` is seen in this process; return whether it
    printed."""
    if key in _noted:
        return False
    _noted.add(key)
    print(f"loce: note: {message}", file=sys.stderr, flush=True)
    return True
