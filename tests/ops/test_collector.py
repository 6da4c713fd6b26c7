"""The web workers' garbage collector upkeep (core/collector.py): long-lived objects leave
the collector's walk, and garbage frozen with them is still reclaimed by the hourly
full collection, so a worker's memory does not grow with listeners come and gone."""
import gc
import weakref

import pytest

from core import collector


class Node:
    def __init__(self):
        self.other = None


def _cycle() -> weakref.ref:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()


def test_long_lived_objects_frozen__a_cycle_dropped_later_is_reclaimed_by_the_full_collection(unfrozen):
    kept = [Node() for _ in range(1000)]  # what a listener holds while it listens
    listener = _cycle()  # a listener's objects refer to each other
    strong = listener()
    before = gc.get_freeze_count()
    collector.freeze_survivors()
    assert gc.get_freeze_count() >= before + len(kept)  # out of the collector's walk

    del strong  # the listener leaves: its cycle is garbage, but frozen
    gc.collect()
    assert listener() is not None  # an ordinary collection does not see it...
    assert collector.full_collection() >= 2
    assert listener() is None  # ...the hourly one reclaims it
    assert gc.get_freeze_count() > 0  # and freezes what still lives
    assert kept[0].other is None


def test_young_garbage_is_collected_before_freezing_not_kept(unfrozen):
    young = _cycle()  # garbage already: nothing refers to the pair
    collector.freeze_survivors()
    assert young() is None


@pytest.mark.parametrize("value, expected", [("7000,10,100", (7000, 10, 100)), ("5000", (5000,)), ("", None),
                                             (" ", None)])
def test_gc_threshold_setting__parsed(value, expected):
    assert collector.parse_thresholds(value) == expected


@pytest.mark.parametrize("value", ["7000,ten", "1,2,3,4", "-1"])
def test_gc_threshold_setting__bad_value_refused_with_the_setting_named(value):
    with pytest.raises(ValueError, match="GC_THRESHOLD"):
        collector.parse_thresholds(value)
