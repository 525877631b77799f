"""Reading instance logs for ``moorage logs`` and the console."""

import os

from moorage.fleet import log_streams, tail


def test_streams_are_an_endpoints_instance_logs_oldest_first(tmp_path):
    (tmp_path / "ep" / "A").mkdir(parents=True)
    (tmp_path / "ep" / "B").mkdir()
    newer, older = tmp_path / "ep" / "A" / "i1.log", tmp_path / "ep" / "B" / "i2.log"
    newer.write_text("new\n")
    older.write_text("old\n")
    os.utime(older, (1, 1))
    (tmp_path / "ep" / "A" / "notes.txt").write_text("")
    assert log_streams(tmp_path, "ep") == [older, newer]
    assert log_streams(tmp_path, "missing") == []


def test_a_name_cannot_reach_outside_the_logs_folder(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "secret" / "x").mkdir(parents=True)
    (tmp_path / "secret" / "x" / "y.log").write_text("no")
    for name in ("..", "../secret", "", ".hidden"):
        assert log_streams(tmp_path / "logs", name) == []


def test_tail_reads_the_last_lines_from_the_end(tmp_path):
    path = tmp_path / "i.log"
    path.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert tail(path, 3) == ["line 99997", "line 99998", "line 99999"]
    # Reading stops at max_bytes: the cut first line is left out.
    assert tail(path, 1000, max_bytes=100) == [f"line {i}" for i in range(99_991, 100_000)]
    assert tail(tmp_path / "gone.log", 3) == []
    path.write_text("")
    assert tail(path, 3) == []
