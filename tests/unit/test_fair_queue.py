"""The fair per-partner queue (service.queue): round-robin lanes, claimed keys, order within a lane."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from onramp.service.queue import FairQueue


def drain(q: FairQueue) -> list[tuple]:
    out = []
    while (popped := q.pop()) is not None:
        lane, key, _item = popped
        out.append((lane, key))
        q.release(key)
    return out


def test_one_partners_backlog_does_not_delay_another():
    q: FairQueue[str, str] = FairQueue()
    for i in range(100):
        q.push("acme", f"acme-{i}", f"file {i}")
    q.push("beta-corp", "beta-0", "file")
    q.push("cyan", "cyan-0", "file")
    order = [lane for lane, _ in drain(q)]
    # acme had 100 files first, yet the others are served within the first round.
    assert order[:3] == ["acme", "beta-corp", "cyan"]
    assert order[3:] == ["acme"] * 99


def test_lane_order_follows_the_given_order_then_arrival():
    q: FairQueue[str, str] = FairQueue()
    q.push("p", "data-2", "d2", order=(1, 200))
    q.push("p", "sync-9", "s9", order=(0, 900))  # ID-sync files first (§3.8.4, D-37)
    q.push("p", "data-1", "d1", order=(1, 100))
    q.push("p", "data-1b", "d1b", order=(1, 100))
    assert [k for _, k in drain(q)] == ["sync-9", "data-1", "data-1b", "data-2"]


def test_a_key_is_claimed_until_released():
    q: FairQueue[str, str] = FairQueue()
    assert q.push("p", "k", "first")
    assert not q.push("p", "k", "again while queued")
    lane, key, item = q.pop()
    assert (lane, key, item) == ("p", "k", "first")
    assert not q.push("p", "k", "again while in progress")
    assert q.pop() is None
    q.release("k")
    assert q.push("p", "k", "after release")
    assert q.pop()[2] == "after release"


def test_drop_removes_a_waiting_item_only():
    q: FairQueue[str, str] = FairQueue()
    q.push("a", "a1", "x")
    q.push("b", "b1", "x")
    q.push("a", "a2", "x")
    assert q.drop("a1")
    assert not q.drop("nope")
    assert q.pop()[1] == "a2"  # lane a keeps its turn
    assert not q.drop("a2")  # in progress
    assert q.drop("b1")
    assert q.pop() is None and len(q) == 0
    assert q.push("b", "b1", "x")  # dropped keys are free again


def test_depth_counts_waiting_items_per_lane():
    q: FairQueue[str, str] = FairQueue()
    for i in range(3):
        q.push("a", f"a{i}", "x")
    q.push("b", "b0", "x")
    assert (q.depth("a"), q.depth("b"), q.depth("c"), len(q)) == (3, 1, 0, 4)
    q.pop()
    assert len(q) == 3


# -- properties -------------------------------------------------------------------------------
ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 4), st.integers(0, 30), st.integers(0, 3)),
        st.tuples(st.just("pop"), st.just(0), st.just(0), st.just(0)),
    ),
    max_size=150,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_every_accepted_key_is_served_exactly_once(script):
    q: FairQueue[int, tuple] = FairQueue()
    pushed: set[tuple] = set()
    served: list[tuple] = []
    for op, lane, n, order in script:
        if op == "push":
            key = (lane, n)
            assert q.push(lane, key, key, order=order) == (key not in pushed)
            pushed.add(key)
        elif (popped := q.pop()) is not None:
            served.append(popped[1])  # not released: the key stays claimed
        else:
            assert len(q) == 0
    served += [k for _, k in drain(q)]
    assert sorted(served) == sorted(pushed)
    assert len(q) == 0 and q.pop() is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), max_size=60))
def test_each_lane_is_served_in_order_then_arrival(items):
    q: FairQueue[int, int] = FairQueue()
    for seq, (lane, order) in enumerate(items):
        q.push(lane, seq, (order, seq), order=order)
    by_lane: dict[int, list] = {}
    while (popped := q.pop()) is not None:
        by_lane.setdefault(popped[0], []).append(popped[2])
    for got in by_lane.values():
        assert got == sorted(got)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["push", "pop"]), st.integers(0, 3)), max_size=120))
def test_a_waiting_lane_is_served_within_one_round(script):
    """Starvation-freedom under arrivals: once a lane has a waiting item, at most one pop per
    other lane happens before it is served (new lanes join behind it)."""
    q: FairQueue[int, int] = FairQueue()
    waiting_since: dict[int, set[int]] = {}  # lane -> lanes served since it started waiting
    n = 0
    for op, lane in script:
        if op == "push":
            q.push(lane, n, n)
            n += 1
            waiting_since.setdefault(lane, set())
            continue
        popped = q.pop()
        if popped is None:
            continue
        served = popped[0]
        q.release(popped[1])
        for other, seen in list(waiting_since.items()):
            if other == served:
                continue
            assert served not in seen, f"lane {served} served twice while lane {other} waited"
            seen.add(served)
        waiting_since[served] = set()
        if q.depth(served) == 0:
            del waiting_since[served]


def test_skipped_lanes_keep_their_turn():
    q: FairQueue[str, str] = FairQueue()
    for lane in ("a", "b", "c"):
        q.push(lane, f"{lane}1", "x")
        q.push(lane, f"{lane}2", "x")
    order = [q.pop(skip={"a"}), q.pop(skip={"a"}), q.pop(), q.pop(skip={"a", "b"}), q.pop(skip={"c"}), q.pop()]
    assert [p[1] for p in order] == ["b1", "c1", "a1", "c2", "b2", "a2"]
    q.push("a", "a3", "x")
    assert q.pop(skip={"a"}) is None and q.depth("a") == 1  # skipping leaves the item queued
    assert q.pop()[1] == "a3"


def test_a_lane_whose_next_item_is_refused_keeps_its_turn():
    """The watcher refuses a second big file while one waits for a slot; that lane is not
    passed over for good: it is served first once its item is accepted again."""
    q: FairQueue[str, int] = FairQueue()
    q.push("big", "b1", 500)
    q.push("big", "b2", 1)
    q.push("small", "s1", 1)
    q.push("small", "s2", 1)
    small_only = lambda size: size < 100
    assert q.pop(accept=small_only)[1] == "s1"
    assert q.pop(accept=small_only)[1] == "s2"
    assert q.pop(accept=small_only) is None and q.depth("big") == 2
    assert [q.pop()[1], q.pop()[1]] == ["b1", "b2"]
