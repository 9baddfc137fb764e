"""The reconciler's worker: one daemon thread that runs every blocking step of a cycle, in order.

``concurrent.futures.ThreadPoolExecutor`` workers are not daemon threads and the interpreter joins
them at exit: a broker call with no timeout (a third-party plugin, a hung socket) would keep the
process alive after the host stopped. This worker is a daemon, so a stop never waits for a call that
does not return; the call is abandoned (nothing it would have written is written). Work runs off the
event loop, so a sink or a receiver may itself call ``asyncio.run``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")
_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonExecutor(Executor):
    """An ``Executor`` of one daemon thread (``loop.run_in_executor`` accepts it): jobs run one at a
    time, in the order submitted."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.put((future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Ask the thread to end after the job in progress. Never waits, whatever ``wait`` says: the job
        in progress may be a call that does not return."""
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn, args, kwargs = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except Exception as exc:
                future.set_exception(exc)
            except BaseException as exc:  # a plugin's sys.exit() must end neither this thread nor the loop
                future.set_exception(RuntimeError(f"{type(exc).__name__} raised in the reconciler's worker: {exc}"))
