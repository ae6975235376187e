"""The write queue hands the turn over in order of arrival and honours each waiter's bound."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from backend.flags.write_queue import WriteQueue


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.001)


def test_write_queue__several_waiters__get_their_turn_in_order_of_arrival() -> None:
    queue = WriteQueue()
    assert queue.acquire(1.0)
    order: list[int] = []
    waiters = []

    def take_turn(k: int) -> None:
        assert queue.acquire(30.0)
        order.append(k)

    for k in range(5):
        t = threading.Thread(target=take_turn, args=(k,))
        t.start()
        wait_until(lambda n=k + 1: len(queue._waiting) == n)  # arrived, in this order
        waiters.append(t)
    for expected in range(5):
        queue.release()  # hands over to the longest waiting one
        wait_until(lambda n=expected + 1: len(order) == n)
    queue.release()
    for t in waiters:
        t.join()
    assert order == [0, 1, 2, 3, 4]
    assert queue.acquire(0.0)  # free again


def test_write_queue__a_waiter_past_its_bound__gives_up_and_leaves_the_queue() -> None:
    queue = WriteQueue()
    assert queue.acquire(1.0)
    assert queue.acquire(0.05) is False
    assert len(queue._waiting) == 0
    queue.release()
    assert queue.acquire(0.0) is True
