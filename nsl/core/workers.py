"""A forked helper process that runs a generator and sends what it yields back over a pipe.

Lighter than multiprocessing.Pool, whose feeder and result threads compete with the writer for the
GIL and pickle every tuple: the writer's own thread receives, messages are marshal (plain values
only: what a prepared batch is, see prepare.Prepared), and only an exception is pickled. The pipe
is the only way back, so the helper runs ahead of the writer by what the pipe holds and no more,
and it never waits for the writer except when the pipe is full: no deadlock is possible. The writer
can still ask the helper for something (Requests, two counters in a shared page): the helper looks
between items, and answers in its stream.

The helper never touches the database. If the writer dies, even by SIGKILL, the helper is killed
too (Linux) or gets EPIPE at its next write; the writer kills it when it gives up on a save.
"""
from __future__ import annotations

import marshal
import mmap
import os
import pickle
import select
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


class Requests:
    """Requests from the writer to the helper, in memory both processes share: the writer asks (a
    count only it writes) and the helper takes (a count only it writes), so neither needs a lock."""

    _slot = struct.Struct("<Q")

    def __init__(self):
        self._mem = mmap.mmap(-1, 16)  # anonymous and shared: the forked helper sees the same page

    def _get(self, i: int) -> int:
        return self._slot.unpack_from(self._mem, 8 * i)[0]

    def ask(self) -> None:
        """Ask for one more, unless one is still pending."""
        asked = self._get(0)
        if asked == self._get(1):
            self._slot.pack_into(self._mem, 0, asked + 1)

    def take(self) -> bool:
        """In the helper: whether the writer asked for something, taking the request if so."""
        given = self._get(1)
        if self._get(0) > given:
            self._slot.pack_into(self._mem, 8, given + 1)
            return True
        return False


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
        self._results = open(read_fd, "rb", buffering=0)  # unbuffered, so that ready() can tell

    def ready(self) -> bool:
        """Whether the next item (or the start of it) has arrived, without waiting."""
        return bool(select.select([self._results], [], [], 0)[0])

    def _read(self, size: int):
        buf = bytearray(size)
        view, got = memoryview(buf), 0
        while got < size:
            n = self._results.readinto(view[got:])
            if not n:
                return None
            got += n
        return buf

    def receive(self):
        """The next item, or None after the last; raises what the generator raised."""
        head = self._read(_HEADER.size)
        if head is not None:
            kind, size = _HEADER.unpack(head)
            payload = self._read(size)
            if payload is not None:
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
