"""The set of job keys a manifest's walk keeps to refuse two identical jobs answers as a set."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from genbatch.manifest.keys import KeySet

KEYS = st.integers(min_value=0, max_value=2**64 - 1)
# Keys that share their low bits (the slot they hash to) and the empty slot's value, 0.
CLASHING = st.builds(
    lambda high, low: high << 8 | low, st.integers(0, 2**56 - 1), st.sampled_from([0, 1, 255])
)


@given(keys=st.lists(st.one_of(KEYS, CLASHING), max_size=300), expected=st.integers(0, 400))
def test_a_key_is_new_only_the_first_time_it_is_added(keys: list[int], expected: int) -> None:
    seen: set[int] = set()
    found = KeySet(expected)
    for key in keys:
        assert found.add(key) is (key not in seen)
        seen.add(key)
    assert len(found) == len(seen)


def test_more_keys_than_expected_are_all_kept() -> None:
    found = KeySet(2)
    keys = [n * 0x9E3779B97F4A7C15 % 2**64 for n in range(10_000)]
    assert all(found.add(key) for key in keys)
    assert not any(found.add(key) for key in keys)
    assert len(found) == 10_000
