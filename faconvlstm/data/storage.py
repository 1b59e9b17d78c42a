"""File handling: atomic output (a file is either absent or complete, never half-written) and
telling the system's file errors from a library's complaints about a file's contents."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import xarray as xr


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary file (or directory, for Zarr stores) lives in the same directory and keeps
    the suffix (writers pick their format from it), so the final ``os.replace`` is atomic.
    On any error it is removed and ``path`` is untouched; a full disk is reported as such.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"Output directory '{directory}' does not exist.")
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"Output directory '{directory}' is not writable.")
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=directory
    )
    os.close(handle)
    os.remove(temporary)
    temporary = Path(temporary)
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException as error:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise OSError(
                errno.ENOSPC,
                f"No space left on the device while writing '{target}'; the previous version, "
                "if any, is untouched. Free some space and run the command again.",
            ) from None
        raise


def is_system_error(error: BaseException) -> bool:
    """Whether ``error`` is the operating system's (an ``OSError`` with a known ``errno``: no
    permission, an I/O failure), not a reader's complaint about what a file holds."""
    return isinstance(error, OSError) and error.errno in errno.errorcode


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (its type's name if it has none)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def write_netcdf(dataset: xr.Dataset | xr.DataArray, path: str | os.PathLike) -> Path:
    """Write ``dataset`` to the NetCDF file ``path`` atomically; returns the path."""
    with atomic_path(path) as temporary:
        dataset.to_netcdf(temporary)
    return Path(path)
