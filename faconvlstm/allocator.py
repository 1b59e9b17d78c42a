"""Keep freed memory in the process (glibc), which speeds up training on CPU.

A training step allocates and frees tensors of several MB; by default glibc serves such
blocks with ``mmap`` and hands them back to the kernel when freed, so every step pays again
in page faults for the memory it touches. :func:`keep_freed_memory` raises glibc's mmap and
trim thresholds for the running process, the setting measured in ``BENCHMARKS.md``. The
command line applies it at start (``--system-allocator`` opts out); the library never
changes it by itself.
"""

from __future__ import annotations

import ctypes
import os
import platform

#: glibc's ``mallopt`` parameters (malloc.h) and the values applied: blocks up to 1 GiB come
#: from the heap, up to 2 GiB of free heap stays in the process, the heap grows 256 MiB at once.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = {M_MMAP_THRESHOLD: 1 << 30, M_TRIM_THRESHOLD: (1 << 31) - 1, M_TOP_PAD: 256 << 20}

#: Environment variables through which a user already chose glibc's malloc settings.
USER_SETTINGS = (
    "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES",
)


def keep_freed_memory() -> str:
    """Apply :data:`SETTINGS` to this process; returns what was done, as a short phrase.

    Nothing changes where the C library is not glibc, or where the environment already sets
    glibc's malloc parameters (the user's choice wins).
    """
    if platform.libc_ver()[0] != "glibc":
        return "unchanged (the C library is not glibc)"
    chosen = [name for name in USER_SETTINGS if name in os.environ]
    if chosen:
        return f"unchanged (set by the environment: {', '.join(chosen)})"
    libc = ctypes.CDLL(None)
    applied = all(libc.mallopt(parameter, value) == 1 for parameter, value in SETTINGS.items())
    return "keeps freed memory" if applied else "unchanged (glibc refused the settings)"
