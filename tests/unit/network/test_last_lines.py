"""network.files.last_lines: a log's last lines, read backwards (a log of gigabytes costs its last lines, not its
size in memory: `network logs -n 50` and the start failures of `gateway start` read them)."""
import tracemalloc

from ipledger.network.files import last_lines


def test_the_last_lines_whatever_the_chunks(tmp_path):
    log = tmp_path / "node.log"
    log.write_bytes(b"".join(f"line {i}\n".encode() for i in range(1000)))
    for chunk in (1, 7, 64, 65536):
        assert last_lines(log, 3, chunk=chunk) == ["line 997", "line 998", "line 999"]
    assert last_lines(log, 2000) == [f"line {i}" for i in range(1000)]
    assert last_lines(log, 0) == []
    assert last_lines(log, 2, end=len(b"line 0\nline 1\nline 2\n")) == ["line 1", "line 2"]
    log.write_bytes(b"no newline at the end \xff")
    assert last_lines(log, 1) == ["no newline at the end \ufffd"]
    log.write_bytes(b"")
    assert last_lines(log, 5) == []


def test_a_large_log_is_not_read_whole(tmp_path):
    log = tmp_path / "big.log"
    with open(log, "wb") as f:
        line = b"x" * 99 + b"\n"
        for _ in range(200):
            f.write(line * 1000)             # 20 MB
    tracemalloc.start()
    try:
        assert len(last_lines(log, 50)) == 50
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000


def test_following_a_log_does_not_split_the_line_being_written(tmp_path, monkeypatch, capsys):
    """`network logs -f`: the last lines, then what is appended — a line still being written at the start is
    printed whole, not broken in two."""
    import pytest
    from ipledger.network.org import runtime as runtime_mod
    log = tmp_path / "node.log"
    log.write_bytes(b"one\ntwo\npart")
    rt = runtime_mod.NativeRuntime.__new__(runtime_mod.NativeRuntime)
    rt.layout = type("Layout", (), {"log_file": lambda self, node: log})()
    sleeps = []

    def sleep(_seconds):
        sleeps.append(1)
        if len(sleeps) == 1:
            with open(log, "ab") as f:
                f.write(b"ial\n")
        else:
            raise KeyboardInterrupt
    monkeypatch.setattr(runtime_mod.time, "sleep", sleep)
    with pytest.raises(KeyboardInterrupt):
        rt.follow(None, 2)
    assert capsys.readouterr().out == "two\npartial\n"
