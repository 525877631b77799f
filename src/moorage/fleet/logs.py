"""Reading the instances' log streams: ``<logs>/<endpoint or job>/<variant>/<instance>.log``.

``local.log_path`` names the files; ``moorage logs`` and the console read them through here.
Blocking file I/O: callers on the event loop run these in a thread.
"""

from pathlib import Path

_BLOCK = 64 * 1024


def log_streams(logs_dir: Path, name: str) -> list[Path]:
    """An endpoint's or a transform job's instance logs, least recently written first.

    Empty when there are none, or when ``name`` is not a plain folder name (a caller passing on
    a name from a URL cannot reach outside ``logs_dir``).
    """
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        return []
    streams = []
    for path in (logs_dir / name).glob("*/*.log"):
        try:
            streams.append((path.stat().st_mtime, path))
        except FileNotFoundError:  # removed since the listing (the endpoint was deleted)
            continue
    return [path for _, path in sorted(streams)]


def tail(path: Path, lines: int, *, max_bytes: int = 1024 * 1024) -> list[str]:
    """The last ``lines`` lines of a stream, reading at most ``max_bytes`` back from its end."""
    try:
        with path.open("rb") as f:
            end = position = f.seek(0, 2)
            data = b""
            while position > 0 and end - position < max_bytes and data.count(b"\n") <= lines:
                step = min(_BLOCK, position, max_bytes - (end - position))
                position -= step
                f.seek(position)
                data = f.read(step) + data
    except FileNotFoundError:
        return []
    text = data.decode("utf-8", "replace").splitlines()
    if position > 0 and text:
        text = text[1:]  # the first line read is cut
    return text[-lines:]
