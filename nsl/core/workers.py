"""A forked helper process that runs one function on the arguments it is sent, over two pipes.

Lighter than multiprocessing.Pool, whose feeder and result threads compete with the writer for the
GIL and pickle every tuple: here the writer's own thread sends and receives, messages are marshal
(plain values only: what a prepared batch is, see prepare.Prepared), and only an exception is pickled.

The helper never touches the database. If the writer dies, even by SIGKILL, the helper reads end of
file or gets EPIPE, and exits; the writer kills it when it gives up on a save.
"""
from __future__ import annotations

import marshal
import os
import pickle
import signal
import struct

from ..errors import NslError

_HEADER = struct.Struct("<cQ")  # kind (b"M" marshal, b"P" pickled exception), payload length
_PIPE_SIZE = 1 << 20  # room for a whole batch, so the helper can write it and go on (Linux only)


def _grow(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except (ImportError, AttributeError, OSError):
        pass  # a smaller pipe only means more, smaller writes


def _send(f, kind: bytes, payload: bytes) -> None:
    f.write(_HEADER.pack(kind, len(payload)))
    f.write(payload)
    f.flush()


def _recv(f):
    head = f.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None, None  # end of file: the other side is done, or gone
    kind, size = _HEADER.unpack(head)
    payload = f.read(size)
    if len(payload) < size:
        return None, None
    return kind, payload


def _pickled(exc: BaseException) -> bytes:
    try:
        return pickle.dumps(exc)
    except Exception:
        return pickle.dumps(NslError(f"{type(exc).__name__}: {exc}"))


def _serve(fn, tasks_fd: int, results_fd: int) -> None:
    with open(tasks_fd, "rb") as tasks, open(results_fd, "wb") as results:
        while True:
            kind, payload = _recv(tasks)
            if kind is None:
                return
            try:
                out = b"M", marshal.dumps(fn(*marshal.loads(payload)))
            except Exception as e:
                out = b"P", _pickled(e)
            _send(results, *out)


class Worker:
    """One forked process running `fn`. close_fds: descriptors of earlier workers, which this one must
    not keep open (they would hide the writer's end of file or death from those workers)."""

    def __init__(self, fn, close_fds=()):
        task_r, task_w = os.pipe()
        res_r, res_w = os.pipe()
        _grow(task_w)
        _grow(res_w)
        pid = os.fork()
        if pid == 0:  # the helper: never returns into the caller's code
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the writer's to handle
                for fd in (task_w, res_r, *close_fds):
                    os.close(fd)
                _serve(fn, task_r, res_w)
                code = 0
            except BaseException:
                pass
            finally:
                os._exit(code)
        os.close(task_r)
        os.close(res_w)
        self.pid = pid
        self._tasks = open(task_w, "wb")
        self._results = open(res_r, "rb")

    def fds(self) -> list[int]:
        return [f.fileno() for f in (self._tasks, self._results) if not f.closed]

    def send(self, args: tuple) -> None:
        _send(self._tasks, b"M", marshal.dumps(args))

    def receive(self):
        """The result of the oldest task sent; raises the exception it raised."""
        kind, payload = _recv(self._results)
        if kind is None:
            raise NslError("the worker process preparing the objects stopped unexpectedly")
        if kind == b"P":
            raise pickle.loads(payload)
        return marshal.loads(payload)

    def finish(self) -> None:
        """No more tasks: the helper exits once it has sent what it was given."""
        if not self._tasks.closed:
            self._tasks.close()

    def close(self) -> None:
        """Stop the helper (it may still be busy if the save failed) and reap it."""
        self.finish()
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
