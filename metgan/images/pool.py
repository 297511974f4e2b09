"""``map`` over fresh worker processes: the pool that converts a subset's images on every core.

:func:`pooled` runs ``function(task)`` for each task over ``workers`` new interpreters started
with ``python -c`` and fed length-prefixed pickles over pipes, so it works in any host process:
an Airflow or Celery worker, a notebook, ``python -c``, a script without a ``__main__`` guard.
multiprocessing's spawn and forkserver children re-run the host's main script instead, which in
an Airflow worker fails in every child. A worker that dies costs its task one retry elsewhere;
workers that cannot start leave the tasks to this process; all of them exit with the caller.
"""

from __future__ import annotations

import logging
import os
import pickle
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

CONVERTER_STARTUP_S = 120.0     # a worker that is not ready by then counts as one that could not start
_IN_FLIGHT = 2                  # tasks queued per worker: one converting, one waiting in its pipe
_PARENT_POLL_S = 0.2

# A worker is a fresh interpreter running this bootstrap, never a copy of the caller: spawn and
# forkserver children re-import the caller's ``__main__`` (an Airflow or Celery worker's main
# script, a notebook kernel), which fails or repeats its work there. A failed import is one line
# on a private stderr, which the caller reads back when the worker does not come up; once up, the
# worker writes to the caller's own stderr (argv[2], -1 for none), so the task log shows it.
_BOOTSTRAP = """
import sys
try:
    from metgan.images.pool import _serve
except BaseException as exc:
    sys.stderr.write(f"cannot import the worker pool: {type(exc).__name__}: {exc}\\n")
    sys.exit(3)
_serve(int(sys.argv[1]), int(sys.argv[2]))
"""


def _frame(message) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(4, "big") + data


def _watch_parent(parent_pid: int) -> None:
    # The parent may die without closing anything (kill -9, the OOM killer): a worker that is
    # re-parented exits at once instead of converting on for nobody.
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_POLL_S)
    os._exit(1)


def _reply(fd: int, frame: bytes) -> bool:
    """Write one whole frame; False when the caller has stopped listening (it stopped early)."""
    view = memoryview(frame)
    try:
        while view:
            view = view[os.write(fd, view):]
    except (BrokenPipeError, OSError):
        return False
    return True


def _serve(parent_pid: int, parent_stderr: int) -> None:
    """A worker's loop: read (function, task) frames from stdin, answer (ok, value) frames on stdout."""
    if parent_stderr >= 0:
        os.dup2(parent_stderr, 2)
        os.close(parent_stderr)
    replies = os.dup(1)
    os.dup2(2, 1)           # a stray print() in a converter must not corrupt the reply stream
    requests = sys.stdin.buffer
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    if not _reply(replies, _frame("ready")):
        return
    while True:
        header = requests.read(4)
        if len(header) < 4:
            return          # the parent closed the pipe: it is done with us, or gone
        body = requests.read(int.from_bytes(header, "big"))
        try:
            function, task = pickle.loads(body)
            reply = (True, function(task))
        except Exception as exc:
            reply = (False, exc)
        try:
            frame = _frame(reply)
        except Exception as exc:       # an unpicklable result or exception
            frame = _frame((False, RuntimeError(f"{type(exc).__name__}: {exc} (sending back {reply[1]!r})")))
        if not _reply(replies, frame):
            return


def _import_path() -> str:
    """The caller's import path, so a worker imports the same code (a checkout first, a DAG folder)."""
    return os.pathsep.join(os.path.abspath(entry or os.curdir) for entry in sys.path)


class _Worker:
    """One converter process, talking length-prefixed pickles over its stdin and stdout."""

    def __init__(self):
        self.ready = False
        self.deadline = time.monotonic() + CONVERTER_STARTUP_S
        self.in_flight: deque[int] = deque()
        self._buffer = bytearray()
        self._stderr = tempfile.TemporaryFile()
        try:
            parent_stderr = os.dup(2)
        except OSError:         # no stderr at all (a daemon): the worker keeps its private one
            parent_stderr = -1
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-c", _BOOTSTRAP, str(os.getpid()), str(parent_stderr)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                env={**os.environ, "PYTHONPATH": _import_path()}, close_fds=True,
                pass_fds=(parent_stderr,) if parent_stderr >= 0 else ())
        finally:
            if parent_stderr >= 0:
                os.close(parent_stderr)

    def fileno(self) -> int:
        return self.process.stdout.fileno()

    def send(self, function, task) -> bool:
        """Queue one task; False when the worker is gone (its death is noticed on its stdout)."""
        try:
            self.process.stdin.write(_frame((function, task)))
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        return True

    def receive(self) -> list | None:
        """The complete replies now readable, or None at end of file (the worker exited)."""
        chunk = os.read(self.fileno(), 1 << 16)
        if not chunk:
            return None
        self._buffer += chunk
        messages = []
        while len(self._buffer) >= 4:
            size = int.from_bytes(self._buffer[:4], "big")
            if len(self._buffer) < 4 + size:
                break
            messages.append(pickle.loads(bytes(self._buffer[4:4 + size])))
            del self._buffer[:4 + size]
        return messages

    def close_pipes(self) -> None:
        """Tell the worker to exit after the task it is running (its stdin ends)."""
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def stop(self) -> str:
        """Let the worker end (killed after 5 s); its last line on stderr, or how it exited."""
        self.close_pipes()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.seek(0)
        lines = [line.strip() for line in self._stderr.read().decode(errors="replace").splitlines() if line.strip()]
        self._stderr.close()
        code = self.process.returncode
        if lines:
            return lines[-1]
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


def pooled(function, tasks: list, *, workers: int, crashed) -> Iterator:
    """``map(function, tasks)`` over ``workers`` fresh processes, in order, surviving worker crashes.

    Works from any host process: workers are new interpreters that import ``function``'s module,
    never the caller's main script. A worker that dies (a decoder crash, the OOM killer) costs
    the task it was running a second try on another worker; if that dies too, its result is
    ``crashed``. Workers that cannot start at all are one warning, and the tasks then run in this
    process: a broken pool is a problem of the build, never a reason to skip an image. Workers
    exit when this process does, however it ends. An exception raised by ``function`` is raised here.
    """
    results: dict[int, Any] = {}
    queue = deque(range(len(tasks)))
    tries: Counter = Counter()
    pool: list[_Worker] = []
    start_failures: list[str] = []
    selector = selectors.DefaultSelector()
    following = 0

    def start() -> None:
        try:
            worker = _Worker()
        except OSError as exc:
            start_failures.append(f"{type(exc).__name__}: {exc}")
            return
        pool.append(worker)
        selector.register(worker.process.stdout, selectors.EVENT_READ, worker)

    def lost(worker: _Worker) -> None:
        selector.unregister(worker.process.stdout)
        pool.remove(worker)
        words = worker.stop()
        if not worker.ready:
            start_failures.append(words)
            return
        start()
        if worker.in_flight:        # the first task in flight is the one it was running
            suspect = worker.in_flight.popleft()
            tries[suspect] += 1
            queue.extendleft(reversed(worker.in_flight))
            if tries[suspect] >= 2:
                log.warning("a worker process died on task %d again (%s); recording it as failed", suspect, words)
                results[suspect] = crashed
            else:
                log.warning("a worker process died on task %d (%s); retrying it in a fresh worker", suspect, words)
                queue.appendleft(suspect)

    try:
        for _ in range(workers):
            start()
        warned = False
        while following < len(tasks):
            while following in results:
                yield results.pop(following)
                following += 1
            if following >= len(tasks):
                break
            ready = [w for w in pool if w.ready]
            left = len(tasks) - following - len(results)
            if start_failures and not warned and all(w.ready for w in pool):
                warned = True
                log.warning("%d of %d converter processes could not start (%s)%s", len(start_failures), workers,
                            start_failures[0], "" if pool else f"; converting {left} tasks in this process")
                if not pool:
                    break   # the rest run here, below
            if not pool:
                log.warning("no converter process is left (%s); converting the remaining %d tasks in this process",
                            start_failures[-1], left)
                break
            for worker in ready:
                while len(worker.in_flight) < _IN_FLIGHT and queue:
                    index = queue.popleft()
                    worker.in_flight.append(index)
                    if not worker.send(function, tasks[index]):
                        break
            timeout = None if ready else max(0.0, min(w.deadline for w in pool) - time.monotonic())
            events = selector.select(timeout)
            if not events and not ready:
                for worker in [w for w in pool if w.deadline <= time.monotonic()]:
                    worker.process.kill()
                    lost(worker)
                continue
            for key, _ in events:
                worker = key.data
                messages = worker.receive()
                if messages is None:
                    lost(worker)
                    continue
                for message in messages:
                    if message == "ready" and not worker.ready:
                        worker.ready = True
                        continue
                    ok, value = message
                    index = worker.in_flight.popleft()
                    if not ok:
                        raise value
                    results[index] = value
    finally:
        # A caller that stops early (an error while recording) must not wait for the queue.
        for worker in pool:
            worker.close_pipes()
        for worker in pool:
            worker.stop()
        selector.close()
    for index in range(following, len(tasks)):
        yield results.pop(index) if index in results else function(tasks[index])
