"""The delivery checker must catch each kind of failure it claims to catch."""

from __future__ import annotations

from delivery import DeliveryChecker


def _checker() -> DeliveryChecker:
    c = DeliveryChecker()
    for off in range(5):
        c.record_produced(0, off, b"v%d" % off)
    return c


def test_clean_run_is_ok() -> None:
    c = _checker()
    for off in range(5):
        c.record_delivered(0, off, b"v%d" % off)
    assert c.assert_exactly_once().delivered == 5


def test_detects_loss_duplicate_reorder_and_wrong_value() -> None:
    c = _checker()
    for off in (0, 2, 1, 2):
        c.record_delivered(0, off, b"v%d" % off)
    c.record_delivered(0, 4, b"other")
    rep = c.report()
    assert (rep.streams.lost, rep.streams.lost_examples) == (1, ((0, 3),))
    assert (rep.streams.duplicated, rep.streams.duplicated_examples) == (1, ((0, 2),))
    assert (rep.streams.reordered, rep.streams.reordered_examples) == (1, ((0, 1),))
    assert rep.wrong_value == [(0, 4)]
    assert not rep.ok
