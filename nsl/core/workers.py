"""A forked helper process that runs a generator and sends what it yields back over a pipe.

Lighter than multiprocessing.Pool, whose feeder and result threads compete with the writer for the
GIL and pickle every tuple: the writer's own thread receives, messages are marshal (plain values
only: what a prepared batch is, see prepare.Prepared), and only an exception is pickled. The pipe
is the only way back, so the helper runs ahead of the writer by what the pipe holds and no more,
and it never waits for the writer except when the pipe is full: no deadlock is possible.

The helper never touches the database. If the writer dies, even by SIGKILL, the helper is killed
too (Linux) or gets EPIPE at its next write; the writer kills it when it gives up on a save.
"""
from __future__ import annotations

import marshal
import os
import pickle
import signal
import struct

from ..errors import NslError

_HEADER = struct.Struct("<cQ")  # kind, payload length
_ITEM, _ERROR, _END = b"M", b"P", b"E"  # marshal of an item, a pickled exception, the end
_PIPE_SIZE = 1 << 20  # a couple of batches: the helper can run that far ahead (Linux only)


def _grow(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except (ImportError, AttributeError, OSError):
        pass  # a smaller pipe only means less room to run ahead


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when the writer dies, rather than waiting for a write to fail
    (the helper may be blocked reading a slow stdin)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)  # the writer died before that took effect


def _send(f, kind: bytes, payload: bytes = b"") -> None:
    f.write(_HEADER.pack(kind, len(payload)))
    f.write(payload)
    f.flush()


def _pickled(exc: BaseException) -> bytes:
    try:
        return pickle.dumps(exc)
    except Exception:
        return pickle.dumps(NslError(f"{type(exc).__name__}: {exc}"))


class Worker:
    """Runs `produce(*args)` (a generator) in a forked process; receive() gives what it yields, in
    order, then None. Fork only from a single-threaded process."""

    def __init__(self, produce, *args):
        read_fd, write_fd = os.pipe()
        _grow(write_fd)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the helper: never returns into the caller's code
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the writer's to handle
                os.close(read_fd)
                with open(write_fd, "wb") as out:
                    try:
                        for i, item in enumerate(produce(*args)):
                            data = marshal.dumps(item)
                            del item  # before the generator makes the next one
                            _send(out, _ITEM, data)
                            del data
                            if i == 0:
                                _die_with_parent(parent)  # once the first item is out: ctypes takes ms
                    except Exception as e:
                        _send(out, _ERROR, _pickled(e))
                    else:
                        _send(out, _END)
                code = 0
            except BaseException:
                pass
            finally:
                os._exit(code)
        os.close(write_fd)
        self.pid = pid
        self._results = open(read_fd, "rb")

    def receive(self):
        """The next item, or None after the last; raises what the generator raised."""
        head = self._results.read(_HEADER.size)
        if len(head) == _HEADER.size:
            kind, size = _HEADER.unpack(head)
            payload = self._results.read(size)
            if len(payload) == size:
                if kind == _ITEM:
                    return marshal.loads(payload)
                if kind == _END:
                    return None
                raise pickle.loads(payload)
        raise NslError("the worker process preparing the objects stopped unexpectedly")

    def close(self) -> None:
        """Stop the helper (it is still busy if the save failed) and reap it."""
        self._results.close()
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = 0
