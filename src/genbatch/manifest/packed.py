"""Many short strings kept in one buffer: a prompt file's prompts, held for a whole run.

A ``str`` object costs 49 bytes beyond its characters, and a list 8 more for the pointer: a
prompt file of 200,000 prompts of 28 characters held 17 MB as a list of strings, 7 MB here.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

__all__ = ["PackedTexts"]

# Surrogates pass through: the prompt readers refuse a lone one ("\ud800") with a one-line error,
# and a text that got here anyway must read back as it was written, not fail halfway.
_ERRORS = "surrogatepass"


class PackedTexts(Sequence[str]):
    """Strings in one UTF-8 buffer with the offset each ends at; each read back on demand."""

    __slots__ = ("_data", "_ends")

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self._data = bytearray()
        self._ends = array("Q")
        for text in texts:
            self.append(text)

    def append(self, text: str) -> None:
        """Add ``text`` at the end."""
        self._data += text.encode("utf-8", _ERRORS)
        self._ends.append(len(self._data))

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self._ends)
        if not 0 <= index < len(self._ends):
            raise IndexError("PackedTexts index out of range")
        start = self._ends[index - 1] if index else 0
        return self._data[start : self._ends[index]].decode("utf-8", _ERRORS)

    def __iter__(self) -> Iterator[str]:
        data, start = self._data, 0
        for end in self._ends:
            yield data[start:end].decode("utf-8", _ERRORS)
            start = end
