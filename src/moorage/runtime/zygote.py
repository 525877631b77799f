"""The zygote: a pre-imported template process that forks new workers in a few milliseconds.

Started once per instance by the front as ``python -m moorage.runtime.zygote FD PRELOAD``; FD
is its end of a ``SOCK_SEQPACKET`` socket pair, PRELOAD a comma-separated list of modules to
import up front (each only if installed; a failing import is logged and skipped). A fresh
``python -m moorage.runtime.worker`` pays interpreter start and imports on every cold load; a
child forked from here starts with all of that done, and shares those pages with its siblings.

Messages are ``marshal``-ed tuples, one per datagram:

- front → zygote: ``(seq, spec_json)`` with the worker's socket end attached (SCM_RIGHTS);
- zygote → front: ``("ready", pid)`` once, then ``("forked", seq, pid)`` or
  ``("failed", seq, message)`` per request, and ``("exit", pid, returncode)`` when it reaps a
  child (returncode as ``subprocess``: negative for a signal). The zygote is the children's
  parent, so only it can learn how they ended.

The zygote stays single-threaded and never runs an event loop or user code: forking a process
with other threads or a loop in it is unsafe. It exits when the front closes the socket.
"""

import atexit
import gc
import importlib
import importlib.util
import logging
import marshal
import os
import select
import signal
import socket
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from moorage.runtime import worker

log = logging.getLogger("moorage.zygote")

MAX_MESSAGE = 1 << 16
_WORKER_FORMAT = "%(asctime)s %(levelname)s [worker %(process)d] %(name)s: %(message)s"


def preload(modules: Sequence[str]) -> list[str]:
    """Import what workers will likely need; return the names that imported."""
    # The handler layer and its codecs' numpy are what every worker imports.
    imported = []
    for name in ("moorage.runtime.handlers", *modules):
        try:
            if importlib.util.find_spec(name.split(".")[0]) is None:
                continue
            importlib.import_module(name)
        except Exception as exc:  # a broken optional library must not stop us
            log.warning("preloading %s failed: %s: %s", name, type(exc).__name__, exc)
            continue
        imported.append(name)
    return imported


def _reap(control: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        control.send(marshal.dumps(("exit", pid, os.waitstatus_to_exitcode(status))))


def _become_worker(
    spec_json: str, fd: int, control: socket.socket, wakeup: Sequence[int]
) -> NoReturn:
    """In the forked child: drop the zygote's state, run the worker, never return."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for end in wakeup:
            os.close(end)
        control.close()
        gc.enable()
        # A fork copies the random state: without this every worker would draw the same
        # numbers from numpy's global generator (Python's own random reseeds itself at fork).
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            numpy.random.seed()
        spec = worker.WorkerSpec.from_json(spec_json)
        logging.basicConfig(level=spec.log_level, format=_WORKER_FORMAT, force=True)
        code = worker.run(spec, fd)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # whatever happens, the child must not return
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(control: socket.socket) -> int:
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    # A Python handler is needed for SIGCHLD to reach the wakeup fd (its default is ignore).
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_write)
    control.send(marshal.dumps(("ready", os.getpid())))
    while True:
        readable, _, _ = select.select([control.fileno(), wake_read], [], [])
        if wake_read in readable:
            while True:
                try:
                    if not os.read(wake_read, 512):
                        break
                except BlockingIOError:
                    break
            _reap(control)
        if control.fileno() not in readable:
            continue
        data, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, 1)
        if not data:
            return 0
        seq, spec_json = marshal.loads(data)
        if not fds:
            control.send(marshal.dumps(("failed", seq, "no socket came with the request")))
            continue
        # Moves everything made so far out of the collector's reach, so that the children's
        # collections do not write to (and so copy) the pages they share with the zygote.
        gc.freeze()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(fds[0])
            control.send(marshal.dumps(("failed", seq, f"fork failed: {exc}")))
            continue
        if pid == 0:
            _become_worker(spec_json, fds[0], control, (wake_read, wake_write))
        os.close(fds[0])
        control.send(marshal.dumps(("forked", seq, pid)))


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [zygote %(process)d] %(name)s: %(message)s",
    )
    # Ctrl-C reaches the whole process group; the front decides when the zygote stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    control = socket.socket(fileno=int(sys.argv[1]))
    modules = [m.strip() for m in sys.argv[2].split(",") if m.strip()] if len(sys.argv) > 2 else []
    # Disabled early, so that objects made while importing are not collected into pages that
    # the children then share (see gc.freeze's documentation).
    gc.disable()
    imported = preload(modules)
    log.debug("preloaded %s", ", ".join(imported))
    try:
        code = serve(control)
    except (BrokenPipeError, ConnectionResetError):
        code = 0  # the front is gone; its workers see their own sockets close
    sys.exit(code)


if __name__ == "__main__":
    main()
