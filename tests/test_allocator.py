"""The allocator setting: applied by the command line, freed memory stays in the process."""

import ctypes
import platform

import pytest
from click.testing import CliRunner

from faconvlstm import allocator, cli
from tests.conftest import on_the_default_backend_only

pytestmark = [
    on_the_default_backend_only("the allocator setting is the same on every backend"),
    pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"),
]

#: Above glibc's largest default mmap threshold (32 MiB): by default such a block is mapped
#: on its own and handed back to the kernel when freed.
BLOCK = 48 << 20


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost",
    )]


def malloc_info(libc) -> MallInfo2:
    libc.mallinfo2.restype = MallInfo2
    return libc.mallinfo2()


def test_a_freed_large_block_stays_in_the_heap(monkeypatch):
    for name in allocator.USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    assert allocator.keep_freed_memory() == "keeps freed memory"
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    mapped_before = malloc_info(libc).hblkhd
    block = libc.malloc(BLOCK)
    assert malloc_info(libc).hblkhd == mapped_before  # from the heap, not a mapping of its own
    libc.free(block)
    assert malloc_info(libc).fordblks >= BLOCK  # kept as free heap, not trimmed


def test_the_environment_s_own_settings_win(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    monkeypatch.setattr(ctypes, "CDLL", lambda *_: pytest.fail("mallopt was called"))
    assert allocator.keep_freed_memory() == (
        "unchanged (set by the environment: MALLOC_TRIM_THRESHOLD_)"
    )


@pytest.mark.parametrize(("arguments", "environment", "applied"), [
    ([], {}, True),
    (["--system-allocator"], {}, False),
    ([], {"FACONVLSTM_TUNE_ALLOCATOR": "0"}, False),
])
def test_the_command_line_applies_the_setting_unless_told_not_to(
    monkeypatch, tmp_path, arguments, environment, applied
):
    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1) or "keeps freed memory")
    result = CliRunner().invoke(
        cli.main, [*arguments, "synth", str(tmp_path / "s.nc"), "--years", "1", "--nlat", "4",
                   "--nlon", "4"], env=environment,
    )
    assert result.exit_code == 0, result.output
    assert calls == ([1] if applied else [])
    assert ("allocator keeps freed memory" in result.output) == applied
