"""The one streaming loop: order, batching, per-item errors, fail-fast, bounded read-ahead, interrupts."""

import itertools
import threading
import time

import pytest

from algnet_cli.pipeline import Item, Pipeline


def _doubling(batch):
    return [x * 2 for x in batch], {"batch": len(batch)}


def test_items_come_out_in_order_with_per_item_errors_captured():
    saved, done = [], []

    def load(key):
        if key == 3:
            raise ValueError("cannot decode 3")
        time.sleep(0.01 * (key % 3))  # readers finish out of order
        return key

    def process(batch):
        if 5 in batch:
            raise RuntimeError("model failed on 5")
        return _doubling(batch)

    def save(item):
        if item.key == 7:
            raise OSError("disk full on 7")
        saved.append((item.key, item.data))

    Pipeline(process, save, load=load, readers=3, depth=2).run((Item(k) for k in range(10)), done.append)
    assert [it.key for it in done] == list(range(10))
    errors = {it.key: type(it.error).__name__ for it in done if it.error is not None}
    assert errors == {3: "ValueError", 5: "RuntimeError", 7: "OSError"}
    assert saved == [(k, 2 * k) for k in range(10) if k not in (3, 5, 7)]
    assert all(it.data is None for it in done)  # dropped once reported


def test_same_key_items_share_a_batch_and_pass_through_items_keep_their_place():
    batches, order = [], []

    def process(batch):
        batches.append(list(batch))
        return [x.upper() for x in batch], None

    stream = [Item(i, data=d, run=d != "|") for i, d in enumerate("aa|abbb|cc")]
    Pipeline(process, lambda it: order.append(it.data), batch_key=lambda d: d, batch_size=lambda d: 2).run(stream)
    assert batches == [["a", "a"], ["a"], ["b", "b"], ["b"], ["c", "c"]]
    assert "".join(order) == "AA|ABBB|CC"  # the pass-through item between batches stays where it was


def test_a_failing_batch_is_retried_one_by_one_so_only_the_culprit_fails():
    calls = []

    def process(batch):
        calls.append(len(batch))
        if "bad" in batch:
            raise ValueError("bad input")
        return batch, None

    done = []
    stream = [Item(i, data=d) for i, d in enumerate(["ok", "bad", "ok"])]
    Pipeline(process, lambda it: None, batch_key=lambda d: 0, batch_size=lambda d: 3).run(stream, done.append)
    assert calls == [3, 1, 1, 1]
    assert [it.error is not None for it in done] == [False, True, False]


def test_read_ahead_is_bounded_for_an_endless_source():
    pulled = itertools.count()
    seen = []

    def source():
        for k in itertools.count():
            next(pulled)
            yield Item(k, data=k)

    def process(batch):
        time.sleep(0.002)
        return batch, None

    class Stop(Exception):
        pass

    def on_done(item):
        seen.append(item.key)
        if item.key == 40:
            raise Stop

    with pytest.raises(Stop):
        Pipeline(process, lambda it: None, depth=3, fail_fast=True).run(source(), on_done)
    ahead = next(pulled) - 1 - len(seen)
    # the inbox and the outbox (3 each), saved items not yet reported (at most the outbox's worth),
    # and one in the hands of each of the three threads and of the source
    assert ahead <= 3 + 3 + 3 + 4


def test_fail_fast_stops_every_stage_and_raises_the_first_error():
    produced = []

    def source():
        for k in range(10_000):
            produced.append(k)
            yield Item(k, data=k)

    def save(item):
        if item.key == 5:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        Pipeline(lambda b: (b, None), save, depth=2, fail_fast=True).run(source())
    assert len(produced) < 100
    assert not [t for t in threading.enumerate() if t.name.startswith(("algnet-read", "algnet-write"))]


def test_an_interrupt_writes_what_the_model_finished_then_raises():
    saved = []

    def process(batch):
        if batch[0] == 6:
            raise KeyboardInterrupt
        return batch, None

    def slow_save(item):
        time.sleep(0.01)
        saved.append(item.key)

    with pytest.raises(KeyboardInterrupt):
        Pipeline(process, slow_save, depth=8).run(Item(k, data=k) for k in range(100))
    assert saved == list(range(6))  # everything before the interrupt, nothing after it


def _interrupted_at_every_opcode(call):
    """Run ``call`` once per bytecode instruction it executes (in Python code, its callees included),
    each time raising KeyboardInterrupt at that instruction, as a signal handler would raise it there.
    Yields after each run."""
    import sys

    counted = [0]

    def counter(frame, event, arg):
        frame.f_trace_opcodes = True
        if event == "opcode":
            counted[0] += 1
        return counter

    sys.settrace(counter)
    try:
        call()
    finally:
        sys.settrace(None)
    for k in range(1, counted[0] + 1):
        seen = [0]

        def tracer(frame, event, arg, k=k, seen=seen):
            frame.f_trace_opcodes = True
            if event == "opcode":
                seen[0] += 1
                if seen[0] == k:
                    raise KeyboardInterrupt
            return tracer

        sys.settrace(tracer)
        try:
            call()
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        yield k


def _finishes(fn, timeout=2.0) -> bool:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    t.join(timeout)
    return not t.is_alive()


def test_an_interrupt_anywhere_in_a_queue_operation_leaves_the_other_thread_able_to_go_on():
    """Ctrl-C raises KeyboardInterrupt wherever the main thread is: raised inside a hand-over between
    the stages (just after a lock was taken, say), it must not leave the queue unusable for the thread
    on the other side, or the clean-up that waits for that thread waits forever (it did, in a video run
    ended by SIGTERM)."""
    from algnet_cli.pipeline import _Queue

    stop = threading.Event()
    q = _Queue(4, stop)
    for k in _interrupted_at_every_opcode(lambda: q.put(1)):
        while len(q.items) > 2:  # room for the next put
            q.items.popleft()
        assert _finishes(lambda: q.put(2)), f"a put from another thread hangs after an interrupt at {k}"

    def get():
        q.items.append(1)  # never an empty queue's wait
        q.get()

    q = _Queue(4, stop)
    for k in _interrupted_at_every_opcode(get):
        q.items.clear()
        assert _finishes(lambda: q.put(3) and q.get() == 3), f"the queue hangs after an interrupt in get at {k}"
