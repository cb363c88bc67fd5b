"""The job keys a walk of the manifest has seen, to refuse two identical jobs.

A key is 16 hexadecimal digits of a SHA-256 digest (``genbatch.jobs.job_key``): a 64-bit number
whose low bits are as random as any hash. So the set is an open-addressing table of those numbers
in one ``array``, 8 to 16 bytes a key, where a ``set`` of the numbers takes about 80 (a 36-byte
int and its slot): 15.6 MB for the 200,000 jobs a large run syncs at its start, 4.2 MB here.
"""

from __future__ import annotations

from array import array

__all__ = ["KeySet"]

_SMALLEST = 16


class KeySet:
    """Job keys (as the numbers their hex digits spell), each added once."""

    def __init__(self, expected: int = 0) -> None:
        # At most half full, so a probe ends after about two slots on average.
        size = _SMALLEST
        while size < 2 * expected:
            size *= 2
        self._table = array("Q", bytes(8 * size))
        self._mask = size - 1
        self._count = 0
        self._zero = False  # the empty slot's value is a key too, once in 2**64

    def __len__(self) -> int:
        return self._count + self._zero

    def add(self, key: int) -> bool:
        """Add ``key``; False when it was there already."""
        if not key:
            seen, self._zero = self._zero, True
            return not seen
        table, mask = self._table, self._mask
        slot = key & mask
        while held := table[slot]:
            if held == key:
                return False
            slot = (slot + 1) & mask
        table[slot] = key
        self._count += 1
        if 2 * self._count > mask:
            self._grow()
        return True

    def _grow(self) -> None:
        """Twice the slots, every key placed again."""
        old = self._table
        self._table = array("Q", bytes(16 * len(old)))
        self._mask = len(self._table) - 1
        self._count = 0
        for key in old:
            if key:
                self.add(key)
