"""The arena's slots: lent as views, given back when the last view is gone."""

import os

import pytest

from moorage.contract.arena import Arena, Slots, answer_body, request_message

SLOT = 64 * 1024


@pytest.fixture
def arena(tmp_path):
    return Arena(tmp_path / "bodies", SLOT, count=2)


def test_a_lent_slot_comes_back_when_its_last_view_is_gone(arena):
    body = arena.lend(1000)
    assert arena.slot_of(body) is not None
    assert arena.free_slots == 1
    part = body[10:20]
    del body
    assert arena.free_slots == 1  # the slice still holds it
    del part
    assert arena.free_slots == 2


def test_bodies_past_the_slots_take_ordinary_memory(arena):
    held = [arena.lend(10), arena.lend(10)]
    extra = arena.lend(10)
    too_large = arena.lend(SLOT + 1)
    assert arena.slot_of(extra) is None
    assert arena.slot_of(too_large) is None
    assert len(extra) == 10
    assert len(too_large) == SLOT + 1
    assert all(arena.slot_of(view) is not None for view in held)


def test_a_slots_memory_is_reserved_before_it_is_lent(tmp_path):
    arena = Arena(tmp_path / "bodies", 3 * 1024 * 1024, count=2)
    assert os.stat(arena.path).st_blocks == 0
    held = arena.lend(10)
    assert os.stat(arena.path).st_blocks * 512 == 1024 * 1024
    del held
    held = arena.lend(2 * 1024 * 1024 + 1)  # the same slot, grown
    assert arena.capacity(arena.slot_of(held)) == 3 * 1024 * 1024
    assert os.stat(arena.path).st_blocks * 512 == 3 * 1024 * 1024


def test_the_worker_sees_what_was_read_into_the_slot_and_answers_there(arena, tmp_path):
    body = arena.lend(5)
    body[:] = b"hello"
    meta, parts = request_message(arena, ({"h": "v"}, None), [body])
    _headers, _model, slot, size, room = meta
    assert room >= size
    assert parts == ()
    assert size == 5
    worker_view = Slots(str(arena.path), arena.slot_size)[slot]
    assert bytes(worker_view[:size]) == b"hello"
    worker_view[:7] = b"goodbye"
    answer, relayed = answer_body((200, "text/plain", [], 7), [body], b"")
    assert answer == (200, "text/plain", [])
    assert bytes(relayed) == b"goodbye"


def test_bodies_not_in_a_slot_travel_as_they_are(arena):
    meta, parts = request_message(arena, ({}, "m"), [b"abc"])
    assert meta == ({}, "m")
    assert parts == [b"abc"]
    assert answer_body((200, None, []), [b"abc"], b"xyz") == ((200, None, []), b"xyz")


def test_slots_left_idle_give_their_memory_back(tmp_path):
    arena = Arena(tmp_path / "bodies", 3 * 1024 * 1024, count=2)
    first, second = arena.lend(2 * 1024 * 1024), arena.lend(1024 * 1024)
    del first
    assert arena.trim(idle_s=60) == 0  # freed just now: kept for the next body
    assert arena.trim(idle_s=0) == 2 * 1024 * 1024
    # The slot still lent keeps its memory; only its megabyte is left in the file.
    assert arena.reserved == 1024 * 1024
    assert os.stat(arena.path).st_blocks * 512 == 1024 * 1024
    assert arena.slot_of(second) is not None
    again = arena.lend(10)  # a trimmed slot is reserved again before it is lent
    assert arena.capacity(arena.slot_of(again)) == 1024 * 1024
    again[:5] = b"fresh"
    assert os.stat(arena.path).st_blocks * 512 == 2 * 1024 * 1024
