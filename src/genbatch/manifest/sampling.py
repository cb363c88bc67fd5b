"""``sample:``: N jobs drawn from a block's full space without listing it.

A block's space is numbered like its full expansion: prompts outermost (each prompt with its own
variants and wildcards, ``Space.prompt_starts``), then each grid key, the zip rows, and the repeat
index innermost. A sampler yields indices into that space; ``Space.point`` decodes one.

Every sampler builds its draws one after the other, draw ``i`` depending only on the seed, ``i``
and the draws before it. So the first N draws of a sample of N + k are the sample of N: raising
``n`` adds jobs and never changes the ones already drawn (nor what they cost).

* ``random`` without weights: a Fisher-Yates shuffle of the space, run lazily (only the positions
  it touched are remembered), so every draw is uniform over the combinations left.
* ``random`` with weights (per-option ``N::`` weights, ``sample.weights``): each choice drawn on
  its own in proportion to its weights; a combination drawn already is drawn again (up to
  ``RETRIES`` times), then taken from the uniform shuffle instead.
* ``latin``: each variable (the prompt, each variant and wildcard of a prompt, each grid key,
  the zip rows, the repeat index) draws its values from a shuffled round of all its values, a
  new round once every value was used. Among the first N draws each value of a variable with k
  values appears N // k or N // k + 1 times. A combination drawn already is drawn again from
  what is left of the rounds; only when every such combination is taken (a sample close to the
  whole space) does the draw come from the uniform shuffle, which may break that evenness.

Random numbers come from BLAKE2b of (seed, stream, draw, counter), not from Python's ``random``:
the same seed gives the same jobs on every Python version and machine.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, islice, product
from math import prod
from typing import Literal

from genbatch.manifest.variants import Part, Pick, compose, picks_of, positive

__all__ = ["RETRIES", "Point", "SampleRequest", "SampleStats", "Space", "sample_indices"]

RETRIES = 32
"""Draws of a combination already taken before the next way is tried."""
_ENUMERATE_AT_MOST = 4096
"""Latin: combinations left in the rounds listed when random draws keep hitting taken ones."""

Strategy = Literal["random", "latin"]


@dataclass(frozen=True, kw_only=True)
class SampleRequest:
    """``sample:`` as checked: how many jobs, the seed, the strategy, the weights per axis."""

    n: int
    seed: int = 0
    strategy: Strategy = "random"
    prompt_weights: tuple[float, ...] | None = None
    axis_weights: tuple[tuple[float, ...] | None, ...] = ()
    """Per axis of the block (grid keys, then the zip rows), its values' weights or None."""


@dataclass(slots=True)
class SampleStats:
    """How a sample was drawn, filled in as its indices are taken."""

    fallbacks: int = 0
    """Draws taken from the uniform shuffle because the strategy's own draws were all taken
    (``latin``: such a draw may break the evenness of its variables)."""


@dataclass(frozen=True, slots=True)
class Point:
    """One combination of a block: prompt, index within its variants, axis values, repeat."""

    prompt: int
    within: int
    axes: tuple[int, ...]
    repeat: int


@dataclass(frozen=True, kw_only=True)
class Space:
    """The combinations of a block, numbered as its full expansion orders them."""

    prompts: Sequence[tuple[Part, ...]]
    """Each prompt's choice tree (a single text part when it has no variant)."""
    axes: tuple[int, ...]
    repeat: int
    prompt_starts: Sequence[int] = field(init=False)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        counts = [prod(p.count for p in picks_of(parts)) for parts in self.prompts]
        # Prompts without variants (every count 1, the usual case) start at their own number: a
        # range, not a tuple of one int per prompt (7.8 MB for a 200,000-line prompt file).
        starts = range(len(counts) + 1) if all(c == 1 for c in counts) else (0, *accumulate(counts))
        object.__setattr__(self, "prompt_starts", starts)
        inner = prod(self.axes) * self.repeat
        object.__setattr__(self, "size", self.prompt_starts[-1] * inner)

    def point(self, index: int) -> Point:
        """The combination numbered ``index``."""
        index, repeat = divmod(index, self.repeat)
        axes = [0] * len(self.axes)
        for position in range(len(self.axes) - 1, -1, -1):
            index, axes[position] = divmod(index, self.axes[position])
        prompt = bisect_right(self.prompt_starts, index) - 1
        return Point(prompt, index - self.prompt_starts[prompt], tuple(axes), repeat)

    def index(self, point: Point) -> int:
        """The number of ``point`` (the inverse of ``point``)."""
        index = self.prompt_starts[point.prompt] + point.within
        for size, value in zip(self.axes, point.axes, strict=True):
            index = index * size + value
        return index * self.repeat + point.repeat


def sample_indices(
    space: Space, request: SampleRequest, stats: SampleStats | None = None
) -> Iterator[int]:
    """The sample's indices into ``space``, in draw order: min(n, size) distinct ones.

    ``stats``, when given, counts the draws that fell back to the uniform shuffle."""
    count = min(request.n, space.size)
    shuffle = _Shuffle(space.size, _Random(request.seed, "shuffle"), stats or SampleStats())
    if request.strategy == "latin":
        draws: Iterator[int] = _Latin(space, request.seed, shuffle).indices()
    elif _weighted(space, request):
        draws = _Weighted(space, request, shuffle).indices()
    else:
        draws = shuffle.indices()
    return islice(draws, count)


def _weighted(space: Space, request: SampleRequest) -> bool:
    return (
        request.prompt_weights is not None
        or any(w is not None for w in request.axis_weights)
        or any(p.weighted for parts in space.prompts for p in picks_of(parts))
    )


class _Random:
    """Reproducible random numbers: ``below(n, draw, counter)`` is uniform in ``[0, n)``."""

    def __init__(self, seed: int, stream: str) -> None:
        self._prefix = f"{seed}/{stream}/".encode()

    def bits(self, draw: int, counter: int) -> int:
        """128 random bits for (``draw``, ``counter``)."""
        digest = hashlib.blake2b(self._prefix + b"%d/%d" % (draw, counter), digest_size=16)
        return int.from_bytes(digest.digest(), "big")

    def below(self, n: int, draw: int, counter: int) -> int:
        """Uniform in ``[0, n)``: 128 bits folded, off by at most n / 2**128 from uniform."""
        return self.bits(draw, counter) % n

    def unit(self, draw: int, counter: int) -> float:
        """Uniform in ``[0, 1)``."""
        return (self.bits(draw, counter) >> 75) / (1 << 53)


class _Shuffle:
    """A Fisher-Yates shuffle of ``range(size)`` done one position at a time, keeping only the
    positions it swapped: the first N values cost O(N) time and memory, whatever the size."""

    def __init__(self, size: int, random: _Random, stats: SampleStats) -> None:
        self.size = size
        self.random = random
        self.stats = stats
        self.moved: dict[int, int] = {}
        self.next = 0
        self.taken: set[int] = set()
        """Every index handed out by the sampler using this shuffle, from any source."""
        self.passed: deque[int] = deque()
        """Values ``first_untaken`` passed over as not allowed, offered again once no allowed
        one is left."""

    def indices(self) -> Iterator[int]:
        """The shuffled values, skipping those taken another way."""
        while self.next < self.size:
            value = self._step()
            if value not in self.taken:
                self.taken.add(value)
                yield value

    def first_untaken(self, allowed: Callable[[int], bool] = lambda _index: True) -> int:
        """The next shuffled value not taken yet and ``allowed`` (else one not allowed): the
        fallback of the other samplers."""
        self.stats.fallbacks += 1
        while self.next < self.size:
            value = self._step()
            if value in self.taken:
                continue
            if allowed(value):
                return value
            self.passed.append(value)
        while self.passed:
            value = self.passed.popleft()
            if value not in self.taken:
                return value
        raise AssertionError("a sample never asks for more than the space holds")

    def _step(self) -> int:
        position = self.next
        other = position + self.random.below(self.size - position, position, 0)
        value = self.moved.get(other, other)
        self.moved[other] = self.moved.get(position, position)
        self.moved.pop(position, None)
        self.next += 1
        return value


class _Weighted:
    """``random`` with weights: every choice drawn on its own, in proportion to its weights."""

    def __init__(self, space: Space, request: SampleRequest, shuffle: _Shuffle) -> None:
        self.space = space
        self.prompt_weights = _cumulative(request.prompt_weights or [1.0] * len(space.prompts))
        self.axis_weights = [
            _cumulative(weights or [1.0] * size)
            for size, weights in zip(
                space.axes, request.axis_weights or [None] * len(space.axes), strict=True
            )
        ]
        self.random = _Random(request.seed, "weighted")
        self.shuffle = shuffle

    def indices(self) -> Iterator[int]:
        taken = self.shuffle.taken
        draw = 0
        while True:
            index = next((i for i in self._tries(draw) if i not in taken), None)
            if index is None:
                index = self.shuffle.first_untaken(self._allowed)
            taken.add(index)
            yield index
            draw += 1

    def _tries(self, draw: int) -> Iterator[int]:
        for attempt in range(RETRIES):
            yield self._one(_Units(self.random, draw, attempt))

    def _allowed(self, index: int) -> bool:
        """Whether no choice of ``index`` has weight 0."""
        point = self.space.point(index)
        weights = [self.prompt_weights, *self.axis_weights]
        for cumulative, value in zip(weights, (point.prompt, *point.axes), strict=True):
            if cumulative[value] == (cumulative[value - 1] if value else 0.0):
                return False
        return positive(self.space.prompts[point.prompt], point.within)

    def _one(self, unit: Callable[[], float]) -> int:
        space = self.space
        prompt = _choose(self.prompt_weights, unit())
        within = _draw_parts(space.prompts[prompt], unit)
        axes = tuple(_choose(weights, unit()) for weights in self.axis_weights)
        repeat = int(unit() * space.repeat)
        return space.index(Point(prompt, within, axes, repeat))


class _Units:
    """The uniform numbers of one attempt at one draw, one after the other."""

    def __init__(self, random: _Random, draw: int, attempt: int) -> None:
        self.random = random
        self.draw = draw
        self.counter = attempt << 32

    def __call__(self) -> float:
        self.counter += 1
        return self.random.unit(self.draw, self.counter)


def _cumulative(weights: Sequence[float]) -> tuple[float, ...]:
    return tuple(accumulate(weights))


def _choose(cumulative: Sequence[float], unit: float) -> int:
    """The position whose weight ``unit`` (in [0, 1)) falls in; never one of weight 0."""
    position = bisect_right(cumulative, unit * cumulative[-1])
    return min(position, len(cumulative) - 1)


def _draw_parts(parts: tuple[Part, ...], unit: Callable[[], float]) -> int:
    return compose(parts, [_draw_pick(pick, unit) for pick in picks_of(parts)])


def _draw_pick(pick: Pick, unit: Callable[[], float]) -> int:
    position = _choose(pick.cumulative_weights, unit())
    return pick.starts[position] + _draw_parts(pick.options[position].parts, unit)


class _Round:
    """The values of one variable not used yet in its current round (a lazy Fisher-Yates)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self.moved: dict[int, int] = {}

    def left(self) -> int:
        """How many values the round has left."""
        return self.size - self.used

    def value(self, offset: int) -> int:
        """The value ``offset`` places into what is left."""
        position = self.used + offset
        return self.moved.get(position, position)

    def use(self, offset: int) -> None:
        """Take the value ``offset`` places into what is left; a new round once all are used."""
        position = self.used + offset
        self.moved[position] = self.moved.get(self.used, self.used)
        self.used += 1
        if self.used == self.size:
            self.used, self.moved = 0, {}


class _Latin:
    """``latin``: values of each variable drawn from rounds (see the module docstring)."""

    def __init__(self, space: Space, seed: int, shuffle: _Shuffle) -> None:
        self.space = space
        self.random = _Random(seed, "latin")
        self.shuffle = shuffle
        self.prompt_round = _Round(len(space.prompts))
        self.pick_rounds = [[_Round(p.count) for p in picks_of(parts)] for parts in space.prompts]
        self.axis_rounds = [_Round(size) for size in space.axes]
        self.repeat_round = _Round(space.repeat)

    def indices(self) -> Iterator[int]:
        taken = self.shuffle.taken
        draw = 0
        while True:
            chosen = next((c for c in self._tries(draw) if c[0] not in taken), None)
            if chosen is None:
                index = self.shuffle.first_untaken()
            else:
                index, rounds, offsets = chosen
                for round_, offset in zip(rounds, offsets, strict=True):
                    round_.use(offset)
            taken.add(index)
            yield index
            draw += 1

    def _rounds(self, prompt: int) -> list[_Round]:
        return [*self.pick_rounds[prompt], *self.axis_rounds, self.repeat_round]

    def _tries(self, draw: int) -> Iterator[tuple[int, list[_Round], list[int]]]:
        """Candidates (index, rounds, offsets): random ones, then every one the rounds allow."""
        for attempt in range(RETRIES):
            counter = iter(range(attempt * 10_000, (attempt + 1) * 10_000))
            prompt_offset = self.random.below(self.prompt_round.left(), draw, next(counter))
            prompt = self.prompt_round.value(prompt_offset)
            rounds = self._rounds(prompt)
            offsets = [self.random.below(r.left(), draw, next(counter)) for r in rounds]
            yield self._candidate(prompt, prompt_offset, rounds, offsets)
        yield from self._every_candidate()

    def _every_candidate(self) -> Iterator[tuple[int, list[_Round], list[int]]]:
        """The combinations left in the rounds, when there are few enough to list."""
        for prompt_offset in range(self.prompt_round.left()):
            prompt = self.prompt_round.value(prompt_offset)
            rounds = self._rounds(prompt)
            if prod(r.left() for r in rounds) > _ENUMERATE_AT_MOST:
                return
            for offsets in product(*(range(r.left()) for r in rounds)):
                yield self._candidate(prompt, prompt_offset, rounds, list(offsets))

    def _candidate(
        self, prompt: int, prompt_offset: int, rounds: list[_Round], offsets: list[int]
    ) -> tuple[int, list[_Round], list[int]]:
        values = [r.value(o) for r, o in zip(rounds, offsets, strict=True)]
        picks = len(self.pick_rounds[prompt])
        within = compose(self.space.prompts[prompt], values[:picks])
        point = Point(prompt, within, tuple(values[picks:-1]), values[-1])
        return (
            self.space.index(point),
            [self.prompt_round, *rounds],
            [prompt_offset, *offsets],
        )
