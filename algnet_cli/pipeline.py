"""One streaming loop for still images and video frames: read ahead -> model -> write behind.

A reader thread walks the items (and, given ``load``, decodes them on a small pool of threads, in
order); the calling thread runs the model on batches of them; a writer thread saves them, in the
order they came. Queues between the stages are short, so memory is bounded for any number of
items. Items that the model does not take (a video's audio packets) travel in order with the rest.

Errors: with ``fail_fast=False`` (files) an item that fails to load, process or save carries its
exception and the stream goes on; with ``fail_fast=True`` (the frames of one video) the first
error stops every stage and is raised. An interrupt (Ctrl-C) stops reading; what the model already
finished is still written, then ``KeyboardInterrupt`` is raised.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .interrupts import shielded

_END = object()


@dataclass
class Item:
    """One unit of work, in stream order.

    key: what it is (a file's job, a frame's index, a packet); data: its decoded input, then the
    model's output; run: False for items the model does not take; error: why it failed; seconds:
    its share of model time; report: what the model step said of it (the runner's report).
    """

    key: Any
    data: Any = None
    run: bool = True
    error: BaseException | None = None
    seconds: float = 0.0
    report: Any = None


#: how often a stage waiting on a queue looks again (s)
POLL_S = 0.002


class _Queue:
    """A bounded queue between one producer and one consumer, whose waits end when the stream is stopped.

    A deque looked at every :data:`POLL_S`, not a ``queue.Queue``: an interrupt becomes a
    KeyboardInterrupt raised in the main thread wherever it is, and raised just after a
    ``queue.Queue`` operation took the queue's lock it leaves that lock held, so that the other
    thread, and the clean-up that waits for it, wait forever. A deque's ``append`` and ``popleft``
    take no lock that Python code holds.
    """

    def __init__(self, depth: int, stop: threading.Event):
        self.items: deque = deque()
        self.depth = depth
        self.stop = stop

    def put(self, item) -> bool:
        while not self.stop.is_set():
            if len(self.items) < self.depth:  # one producer: nothing else makes it longer meanwhile
                self.items.append(item)
                return True
            time.sleep(POLL_S)
        return False

    def get(self):
        while True:
            try:
                return self.items.popleft()
            except IndexError:
                if self.stop.is_set():
                    return _END
                time.sleep(POLL_S)


class Pipeline:
    """Stream items through ``load`` (reader threads), ``process`` (here) and ``save`` (writer thread).

    load(key) -> data: decode one item that the model takes (None: the items come with their data).
    process(datas) -> (outputs, report): the model on a batch of same-key data, in order.
    save(item): write one item (its ``data`` is the model's output, or the raw item when run=False);
    ``on_done`` still sees ``data``, which is dropped after it.
    batch_key(data) -> hashable: items with equal keys may share a batch (None: never batched).
    batch_size(data) -> int: how many such items one batch may hold.
    """

    def __init__(
        self,
        process: Callable[[list], tuple[list, Any]],
        save: Callable[[Item], None],
        *,
        load: Callable[[Any], Any] | None = None,
        readers: int = 1,
        depth: int = 4,
        batch_key: Callable[[Any], Hashable | None] = lambda data: None,
        batch_size: Callable[[Any], int] = lambda data: 1,
        fail_fast: bool = False,
    ):
        self.process, self.save, self.load = process, save, load
        self.readers, self.depth = max(1, readers), max(1, depth)
        self.batch_key, self.batch_size = batch_key, batch_size
        self.fail_fast = fail_fast

    def run(self, items: Iterable[Item], on_done: Callable[[Item], None] | None = None) -> None:
        """Stream ``items``; ``on_done(item)`` is called here, in order, once each is saved or failed."""
        shared = _Shared()
        reader = _ReadAhead(self, items, shared)
        writer = _WriteBehind(self, on_done or (lambda item: None), shared)
        model = _ModelStage(self, reader, writer, shared)
        reader.start()
        writer.start()
        try:
            model.loop()
        except KeyboardInterrupt:
            with shielded():  # what the model finished is written; a second Ctrl-C must not cut it
                _finish(reader, writer, shared, write_pending=True)
            raise
        except BaseException:
            with shielded():
                _finish(reader, writer, shared, write_pending=False)
            raise
        _finish(reader, writer, shared, write_pending=True)


class _Shared:
    """What the stages of one run share: the stop signals, and the first error that ends the stream."""

    def __init__(self):
        self.stop_reading, self.stop_writing = threading.Event(), threading.Event()
        self.fatal: BaseException | None = None

    def fail(self, e: BaseException) -> None:
        self.fatal = self.fatal or e

    def raise_fatal(self) -> None:
        if self.fatal is not None:
            raise self.fatal


class _ReadAhead:
    """The reader thread: walks the items, decodes those for the model on a small pool (in order), and
    queues them for the model stage."""

    def __init__(self, pipe: Pipeline, items: Iterable[Item], shared: _Shared):
        self.pipe, self.items, self.shared = pipe, items, shared
        self.inbox = _Queue(pipe.depth, shared.stop_reading)
        self.thread = threading.Thread(target=self._read, name="algnet-read", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def get(self):
        """The next item, or ``_END``."""
        return self.inbox.get()

    def _loaded(self) -> Iterator[Item]:
        load = self.pipe.load
        if load is None:
            yield from self.items
            return
        with ThreadPoolExecutor(self.pipe.readers, thread_name_prefix="algnet-decode") as pool:
            ahead: deque = deque()
            for item in self.items:
                ahead.append((item, pool.submit(load, item.key) if item.run else None))
                if len(ahead) > self.pipe.readers:
                    yield self._result(*ahead.popleft())
                if self.shared.stop_reading.is_set():
                    break
            while ahead and not self.shared.stop_reading.is_set():
                yield self._result(*ahead.popleft())
            for _, future in ahead:
                future.cancel()

    def _result(self, item: Item, future) -> Item:
        if future is None:  # not for the model: nothing to load
            return item
        try:
            item.data = future.result()
        except Exception as e:  # noqa: BLE001 - one item's failure, whatever its kind, is that item's
            if self.pipe.fail_fast:
                raise
            item.error = e
        return item

    def _read(self) -> None:
        try:
            for item in self._loaded():
                if not self.inbox.put(item):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the model stage
            self.shared.fail(e)
        finally:
            self.inbox.put(_END)


class _WriteBehind:
    """The writer thread: saves what the model stage hands it, in order; and the reporting of the saved
    (or failed) items through ``on_done``, on the calling thread."""

    def __init__(self, pipe: Pipeline, on_done: Callable[[Item], None], shared: _Shared):
        self.pipe, self.on_done, self.shared = pipe, on_done, shared
        self.outbox = _Queue(pipe.depth, shared.stop_writing)
        self.done: deque = deque()  # written or failed, for on_done (lock-free: see _Queue)
        self.sent = 0  # items handed to the writer
        self.reported = 0  # of which on_done has been called
        self.thread = threading.Thread(target=self._write, name="algnet-write", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def put(self, item: Item) -> bool:
        if not self.outbox.put(item):
            return False
        self.sent += 1
        return True

    def _write(self) -> None:
        while True:
            item = self.outbox.get()
            if item is _END:
                return
            if item.error is None:
                try:
                    self.pipe.save(item)
                except BaseException as e:  # noqa: BLE001 - the item's, or the stream's when fail_fast
                    item.error = e
                    if self.pipe.fail_fast:
                        self.shared.fail(e)
                        self.shared.stop_writing.set()
                        self.shared.stop_reading.set()
                        return
            self.done.append(item)

    def report(self, block: bool) -> None:
        """``on_done`` for every item written so far (``block``: and for those still being written)."""
        while self.reported < self.sent:
            try:
                item = self.done.popleft()
            except IndexError:
                if not block or (not self.thread.is_alive() and not self.done):
                    return
                time.sleep(POLL_S)
                continue
            self.reported += 1
            self.on_done(item)
            item.data = None  # written and reported: free it


class _ModelStage:
    """The model, on the calling thread: items gathered into batches of equal keys, run, and handed to
    the writer in stream order with the pass-through items among them."""

    def __init__(self, pipe: Pipeline, reader: _ReadAhead, writer: _WriteBehind, shared: _Shared):
        self.pipe, self.reader, self.writer, self.shared = pipe, reader, writer, shared

    def loop(self) -> None:
        pending: list[Item] = []  # in stream order: a batch to run and the pass-through items among it
        batch: list[Item] = []
        while True:
            item = self.reader.get()
            if item is _END:
                break
            if item.run and item.error is None:
                key = self.pipe.batch_key(item.data)
                if batch and (key is None or key != self.pipe.batch_key(batch[0].data)):
                    self._flush(pending, batch)
                batch.append(item)
            pending.append(item)
            if batch and len(batch) >= self.pipe.batch_size(batch[0].data):
                self._flush(pending, batch)
            self.writer.report(block=False)
        self.shared.raise_fatal()
        self._flush(pending, batch)

    def _flush(self, pending: list[Item], batch: list[Item]) -> None:
        if batch:
            self._run_batch(batch)
        for item in pending:
            if not self.writer.put(item):
                break
        pending.clear()
        batch.clear()
        self.shared.raise_fatal()

    def _run_batch(self, batch: list[Item]) -> None:
        t0 = time.perf_counter()
        try:
            outs, report = self.pipe.process([it.data for it in batch])
        except Exception as e:  # noqa: BLE001 - one item's failure, whatever its kind, is that item's
            if self.pipe.fail_fast:
                raise
            if len(batch) > 1:  # find the culprit: each on its own
                for it in batch:
                    self._run_batch([it])
                return
            batch[0].error, batch[0].data = e, None
            return
        share = (time.perf_counter() - t0) / len(batch)
        for it, out in zip(batch, outs):
            it.data, it.seconds, it.report = out, share, report


def _finish(reader: _ReadAhead, writer: _WriteBehind, shared: _Shared, write_pending: bool) -> None:
    """Stop reading; let the writer finish what it was handed (or drop it), and report it."""
    shared.stop_reading.set()
    if write_pending:
        writer.outbox.put(_END)
    else:
        shared.stop_writing.set()
    writer.thread.join()
    shared.stop_writing.set()
    reader.thread.join(timeout=5)
    writer.report(block=True)
    shared.raise_fatal()
