"""The range assignor and the assignment encoding: pure functions, no store."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from plait.groups.assign import decode_assignment, encode_assignment, range_assign


def test_range_assign_matches_kafka_for_uneven_counts():
    got = range_assign({"c": {"t"}, "a": {"t"}, "b": {"t", "u"}}, {"t": 7, "u": 2})
    assert got == {
        "a": [("t", 0), ("t", 1), ("t", 2)],
        "b": [("t", 3), ("t", 4), ("u", 0), ("u", 1)],
        "c": [("t", 5), ("t", 6)],
    }


def test_topics_without_a_count_are_left_out():
    assert range_assign({"a": {"t", "gone"}}, {"t": 1}) == {"a": [("t", 0)]}


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.sets(st.sampled_from(["t", "u", "v"]), min_size=1),
        min_size=1,
        max_size=6,
    ),
    st.dictionaries(st.sampled_from(["t", "u", "v"]), st.integers(0, 40)),
)
def test_every_partition_has_exactly_one_subscribed_owner(subs, counts):
    got = range_assign(subs, counts)
    owners: dict[tuple[str, int], str] = {}
    for member, parts in got.items():
        for tp in parts:
            assert tp not in owners, f"{tp} assigned twice"
            assert tp[0] in subs[member]
            owners[tp] = member
    want = {(t, p) for t, n in counts.items() for p in range(n) if any(t in s for s in subs.values())}
    assert set(owners) == want
    # Balanced: per topic, member shares differ by at most one.
    for t in counts:
        sizes = [sum(1 for tp in got[m] if tp[0] == t) for m in subs if t in subs[m]]
        assert not sizes or max(sizes) - min(sizes) <= 1
    assert range_assign(dict(reversed(list(subs.items()))), counts) == got  # order-free


def test_assignment_encoding_survives_any_topic_name():
    parts = [("a,b:c", 0), ("ü/x", 3)]
    assert decode_assignment(encode_assignment(parts)) == parts
