"""Adaptive micro-batching: concurrent requests scored in one model call.

Most of a request's scoring cost is fixed per model call (an IsolationForest walks its
trees once per call, whatever the row count), so requests that arrive together are
scored together and the results split back, each request getting its own, in order.

``Batcher`` runs in the event loop. A request first says it is coming (``expect``: its
rows are being parsed and checked), then hands its checked rows in (``submit``) and
awaits its own result. A batch is started when no batch is in flight and either nobody
else is expected, the oldest waiting request has waited ``max_delay`` seconds, or the
waiting rows reach ``max_rows``. So a single request on an idle server is scored at
once; requests wait for company only while others are already on their way or a batch
is being scored. One batch is in flight at a time; it holds requests of one key only
(the served model: a swap in between never mixes two versions in a batch), at most
``max_rows`` rows (a larger request goes alone, never split).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Hashable

__all__ = ["Batcher"]


@dataclass
class _Waiting:
    key: Hashable
    item: Any
    rows: int
    arrived: float
    future: asyncio.Future = field(repr=False)


class Batcher:
    """Gathers submitted items into batches and runs ``run(key, items)`` on each batch.

    ``run`` is a coroutine function returning one result per item, in order (run the
    CPU work in a thread from it); an exception it raises is every item's exception.
    """

    def __init__(self, run: Callable[[Hashable, list], Awaitable[list]], max_delay: float,
                 max_rows: int):
        self.run = run
        self.max_delay = max_delay  # seconds
        self.max_rows = max_rows
        self._pending: list[_Waiting] = []
        self._expected = 0  # requests announced (being checked) and not submitted yet
        self._in_flight = False
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()

    def expect(self) -> None:
        """One more request is on its way: follow with one ``submit`` or ``forget``."""
        self._expected += 1

    def forget(self) -> None:
        """A request announced by ``expect`` will not come (its rows were refused)."""
        self._expected = max(0, self._expected - 1)
        self._dispatch()

    async def submit(self, key: Hashable, item: Any, rows: int) -> Any:
        """``item``'s result, once scored in a batch of items of the same ``key``
        (an announced request arrives: counts one ``expect`` done)."""
        loop = asyncio.get_running_loop()
        self._expected = max(0, self._expected - 1)
        waiting = _Waiting(key, item, rows, time.monotonic(), loop.create_future())
        self._pending.append(waiting)
        self._dispatch()
        return await waiting.future

    def _dispatch(self) -> None:
        """Start a batch if one is due; else, if some wait, look again when the oldest
        has waited ``max_delay``."""
        self._pending = [w for w in self._pending if not w.future.done()]  # gone clients
        if self._in_flight or not self._pending:
            return
        first = self._pending[0]
        same = [w for w in self._pending if w.key == first.key]
        due = first.arrived + self.max_delay
        if (self._expected and sum(w.rows for w in same) < self.max_rows
                and time.monotonic() < due):
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(
                    max(0.0, due - time.monotonic()), self._wake)
            return
        batch, rows = [], 0
        for waiting in same:
            if batch and rows + waiting.rows > self.max_rows:
                break
            batch.append(waiting)
            rows += waiting.rows
        taken = {id(w) for w in batch}
        self._pending = [w for w in self._pending if id(w) not in taken]
        self._in_flight = True
        task = asyncio.get_running_loop().create_task(self._score(first.key, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _wake(self) -> None:
        self._timer = None
        self._dispatch()

    async def _score(self, key: Hashable, batch: list[_Waiting]) -> None:
        try:
            results = await self.run(key, [w.item for w in batch])
        except asyncio.CancelledError:
            for waiting in batch:
                waiting.future.cancel()
            raise
        except Exception as exc:  # every request of the batch gets it
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(exc)
        else:
            for waiting, result in zip(batch, results):
                if not waiting.future.done():
                    waiting.future.set_result(result)
        finally:
            self._in_flight = False
            self._dispatch()
