"""Prompts packed in one buffer read back exactly as they were written."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genbatch.manifest.packed import PackedTexts

# Any text a prompt file or a JSONL escape can give, lone surrogates included.
TEXTS = st.lists(st.text(st.characters(codec=None)), max_size=40)


@given(texts=TEXTS)
def test_packed_texts_read_back_as_the_list_they_were(texts: list[str]) -> None:
    packed = PackedTexts(texts)
    assert len(packed) == len(texts)
    assert list(packed) == texts
    assert [packed[i] for i in range(len(texts))] == texts
    assert [packed[-i] for i in range(1, len(texts) + 1)] == [
        texts[-i] for i in range(1, len(texts) + 1)
    ]
    assert packed[1:-1:2] == texts[1:-1:2]


def test_an_index_past_either_end_is_an_index_error() -> None:
    packed = PackedTexts(["a", "b"])
    for index in (2, -3):
        with pytest.raises(IndexError):
            packed[index]
