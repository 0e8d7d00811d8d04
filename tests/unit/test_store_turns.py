"""StoreTurns (service.turns): jobs share the store, the ID-sync loader and API reprocesses
take it alone, and a waiting lone user is not starved by a stream of jobs."""

from __future__ import annotations

import threading
import time

import pytest

from onramp.service.turns import StoreTurns


def hold_shared(turns: StoreTurns, entered: threading.Event, leave: threading.Event) -> threading.Thread:
    def body() -> None:
        with turns.shared():
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=body)
    thread.start()
    return thread


def test_jobs_share_the_store_and_a_lone_user_waits_for_them():
    turns = StoreTurns()
    leave = threading.Event()
    entered = [threading.Event(), threading.Event()]
    jobs = [hold_shared(turns, e, leave) for e in entered]
    assert all(e.wait(5) for e in entered), "two jobs hold the store at once"
    assert turns.acquire(blocking=False) is False
    assert turns.acquire(timeout=0.1) is False
    leave.set()
    for job in jobs:
        job.join(5)
    assert turns.acquire(timeout=5) is True
    turns.release()
    assert not turns.locked()


def test_a_waiting_lone_user_goes_before_jobs_that_come_after_it():
    turns = StoreTurns()
    leave_first, first_in = threading.Event(), threading.Event()
    hold_shared(turns, first_in, leave_first)
    assert first_in.wait(5)
    order: list[str] = []
    loader = threading.Thread(target=lambda: (turns.acquire(), order.append("loader"), turns.release()))
    loader.start()
    while not turns._waiting_alone:  # the loader is queued behind the first job
        time.sleep(0.01)
    late_in = threading.Event()
    late = threading.Thread(target=lambda: (turns.shared().__enter__(), order.append("late job"), late_in.set()))
    late.start()
    assert not late_in.wait(0.2), "a job arriving after a waiting loader must not overtake it"
    leave_first.set()
    loader.join(5)
    assert late_in.wait(5)
    assert order == ["loader", "late job"]


def test_a_lone_user_that_gives_up_lets_waiting_jobs_in():
    turns = StoreTurns()
    leave, first_in = threading.Event(), threading.Event()
    first = hold_shared(turns, first_in, leave)
    assert first_in.wait(5)
    giving_up = threading.Thread(target=lambda: turns.acquire(timeout=0.3))
    giving_up.start()
    while not turns._waiting_alone:
        time.sleep(0.01)
    second_in = threading.Event()
    second = hold_shared(turns, second_in, leave)
    assert not second_in.wait(0.1)
    giving_up.join(5)
    assert second_in.wait(5), "once the lone user gave up, the job goes in next to the first"
    leave.set()
    first.join(5)
    second.join(5)


def test_the_lone_turn_is_a_lock():
    turns = StoreTurns()
    with turns:
        assert turns.locked() and turns.acquire(blocking=False) is False
    assert not turns.locked()
    with pytest.raises(RuntimeError, match="not held"):
        turns.release()
