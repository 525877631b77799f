"""Reading memory figures from /proc (Linux only)."""

import os
import sys

import pytest

from moorage.runtime.memory import memory_available, process_memory, tree_size

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_own_private_memory_is_positive_and_below_rss():
    private = process_memory(os.getpid())
    assert private is not None
    assert private > 0
    with open(f"/proc/{os.getpid()}/status") as status:
        rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    assert private <= rss


def test_missing_process_has_no_memory():
    assert process_memory(2**22 + 1) is None  # above the kernel's pid_max


def test_memory_available_is_known():
    available = memory_available()
    assert available is not None
    assert available > 0


def test_tree_size_counts_files_but_not_links(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 5)
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert tree_size(tmp_path) == 15
