"""The delivery checker must see each kind of failure, and pass a clean stream."""

from __future__ import annotations

import pytest

from plait.fastlane.delivery import check_delivery

from .lanes import assert_exactly_once_in_order


def test_a_clean_stream_passes() -> None:
    report = check_delivery({0: [1, 2, 3], 1: [7, 8]}, {1: [7, 8], 0: [1, 2, 3]})
    assert report.ok and report.produced == 5 and report.delivered == 5
    assert assert_exactly_once_in_order([1, 2, 3], iter([1, 2, 3])).ok


def test_lost_events_are_counted_with_examples() -> None:
    report = check_delivery({0: list(range(10))}, {0: [0, 1, 2, 5, 6, 9]})
    assert (report.lost, report.duplicated, report.reordered) == (4, 0, 0)
    assert report.lost_examples == ((0, 3), (0, 4), (0, 7), (0, 8))
    assert not report.ok


def test_duplicates_are_counted_per_extra_copy() -> None:
    report = check_delivery([1, 2, 3], [1, 2, 2, 2, 3, 1])
    assert (report.lost, report.duplicated, report.reordered) == (0, 3, 0)
    assert report.duplicated_examples == ((None, 2), (None, 2), (None, 1))


def test_a_late_event_counts_once_as_reordered() -> None:
    report = check_delivery([1, 2, 3, 4, 5], [2, 3, 4, 5, 1])
    assert (report.lost, report.duplicated, report.reordered) == (0, 0, 1)
    assert report.reordered_examples == ((None, 1),)
    swapped = check_delivery({"p": [1, 2, 3, 4]}, {"p": [1, 3, 2, 4]})
    assert swapped.reordered == 1 and swapped.reordered_examples == (("p", 2),)


def test_order_across_partitions_is_not_judged() -> None:
    # Interleaving partitions differently is fine; only order within one counts.
    assert check_delivery({0: [1, 2], 1: [3, 4]}, {0: [1, 2], 1: [3, 4]}).ok


def test_unexpected_and_unknown_streams() -> None:
    report = check_delivery({0: [1, 2]}, {0: [1, 2, 99], 5: [1]})
    assert report.unexpected == 2 and report.unexpected_examples == ((0, 99), (5, 1))
    assert "2 unexpected" in str(report)


def test_all_kinds_at_once_and_the_assertion_helper_fails() -> None:
    report = check_delivery([1, 2, 3, 4], [1, 3, 2, 2])
    assert (report.lost, report.duplicated, report.reordered) == (1, 1, 1)
    with pytest.raises(AssertionError, match="1 lost"):
        assert_exactly_once_in_order([1, 2, 3, 4], [1, 3, 2, 2])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        check_delivery([1, 1], [1])
    with pytest.raises(TypeError):
        check_delivery({0: [1]}, [1])
