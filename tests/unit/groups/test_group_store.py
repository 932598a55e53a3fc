"""GroupStore over the SQLite metadata store: fenced commits, CAS on generations."""

from __future__ import annotations

import pytest

from plait.groups import FencedCommitError, GroupBusyError, GroupState, GroupStore
from plait.meta.url import open_meta


@pytest.fixture
def store(tmp_path):
    meta = open_meta(f"sqlite:{tmp_path / 'meta.sqlite'}")
    yield GroupStore(meta)
    meta.close()


def test_save_is_a_compare_and_swap_on_generation(store):
    assert store.load("g") is None
    assert store.save("g", GroupState(generation=1, members={"m": {}}), expected_generation=0)
    assert not store.save("g", GroupState(generation=2), expected_generation=0)
    assert store.save("g", GroupState(generation=2, leader="m"), expected_generation=1)
    loaded = store.load("g")
    assert loaded is not None and loaded.generation == 2 and loaded.leader == "m"


def test_commit_is_fenced_by_generation(store):
    store.save("g", GroupState(generation=3, members={"m": {}}), 0)
    store.commit_offsets("g", 3, {("t", 0): (10, "meta"), ("t", 1): (20, "")})
    with pytest.raises(FencedCommitError) as info:
        store.commit_offsets("g", 2, {("t", 0): (99, "")})
    assert info.value.current == 3
    assert store.fetch_offsets("g") == {("t", 0): (10, "meta"), ("t", 1): (20, "")}
    assert store.fetch_offsets("g", [("t", 1), ("t", 5)]) == {("t", 1): (20, "")}


def test_generationless_commit_only_without_members(store):
    store.commit_offsets("solo", -1, {("t", 0): (4, "")})
    assert store.fetch_offsets("solo") == {("t", 0): (4, "")}
    store.save("busy", GroupState(generation=1, members={"m": {}}), 0)
    with pytest.raises(GroupBusyError):
        store.commit_offsets("busy", -1, {("t", 0): (1, "")})


def test_group_names_cannot_escape_their_folder(store):
    store.save("a/b", GroupState(generation=1), 0)
    store.commit_offsets("a/b", 1, {("t", 0): (1, "")})
    assert store.fetch_offsets("a") == {}
    assert "a/b" in store.list_groups()
    store.delete("a/b")
    assert store.load("a/b") is None
