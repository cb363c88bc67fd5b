"""Properties of ``sample:``: reproducible for a seed, the first N kept when N grows, every draw
in the full space and distinct, and Latin-hypercube draws even on every variable.

The samplers are driven through ``genbatch.manifest.sampling`` (a space described by its sizes
and prompt trees), and through ``load_manifest`` for the jobs themselves.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genbatch.manifest import load_manifest
from genbatch.manifest.locations import Source
from genbatch.manifest.sampling import SampleRequest, SampleStats, Space, sample_indices
from genbatch.manifest.variants import Option, Part, Pick, parse_choices

KLING = "kling/kling-2-6/pro/text-to-video"
NO_WILDCARDS = Source("test")


def _no_wildcard(name: str, where: Source) -> Pick:
    raise AssertionError("no wildcard in these prompts")


def prompt_tree(sizes: list[int]) -> tuple[Part, ...]:
    """A prompt with one variant per size: ``{0|1} {0|1|2}``..."""
    text = " ".join("{" + "|".join(str(v) for v in range(size)) + "}" for size in sizes)
    return parse_choices(text, source=NO_WILDCARDS, wildcard=_no_wildcard) if sizes else ("",)


spaces = st.builds(
    lambda prompts, axes, repeat: Space(
        prompts=tuple(prompt_tree(p) for p in prompts), axes=tuple(axes), repeat=repeat
    ),
    st.lists(st.lists(st.integers(2, 4), max_size=2), min_size=1, max_size=3),
    st.lists(st.integers(1, 6), max_size=3),
    st.integers(1, 3),
)
strategies = st.sampled_from(["random", "latin"])
seeds = st.integers(0, 2**64)


def draw(space: Space, n: int, seed: int, strategy: str, **weights: object) -> list[int]:
    request = SampleRequest(n=n, seed=seed, strategy=strategy, **weights)  # type: ignore[arg-type]
    return list(sample_indices(space, request))


@given(spaces, st.integers(1, 60), seeds, strategies)
def test_a_sample_is_the_same_for_the_same_seed(
    space: Space, n: int, seed: int, strategy: str
) -> None:
    assert draw(space, n, seed, strategy) == draw(space, n, seed, strategy)


@given(spaces, st.integers(1, 40), st.integers(0, 40), seeds, strategies)
def test_growing_n_keeps_the_first_n_draws(
    space: Space, n: int, more: int, seed: int, strategy: str
) -> None:
    assert draw(space, n + more, seed, strategy)[:n] == draw(space, n, seed, strategy)


@given(spaces, st.integers(1, 200), seeds, strategies)
def test_every_draw_is_a_distinct_combination_of_the_space(
    space: Space, n: int, seed: int, strategy: str
) -> None:
    drawn = draw(space, n, seed, strategy)

    assert len(drawn) == min(n, space.size)
    assert len(set(drawn)) == len(drawn)
    assert all(0 <= index < space.size for index in drawn)
    assert all(space.index(space.point(index)) == index for index in drawn)


@given(
    spaces,
    st.integers(1, 60),
    seeds,
    st.data(),
)
def test_weighted_draws_are_distinct_and_never_pick_weight_0_while_others_remain(
    space: Space, n: int, seed: int, data: st.DataObject
) -> None:
    axis_weights = tuple(
        tuple(data.draw(st.lists(st.sampled_from([0.0, 1.0, 3.0]), min_size=s, max_size=s)))
        for s in space.axes
    )
    axis_weights = tuple(w if any(w) else (1.0,) * len(w) for w in axis_weights)
    allowed = {
        index
        for index in range(space.size)
        if all(w[v] > 0 for w, v in zip(axis_weights, space.point(index).axes, strict=True))
    }

    drawn = draw(space, n, seed, "random", axis_weights=axis_weights)

    assert len(set(drawn)) == len(drawn) == min(n, space.size)
    assert all(index in allowed for index in drawn[: len(allowed)])


@given(
    st.lists(st.integers(2, 8), min_size=1, max_size=3),
    st.integers(1, 3),
    seeds,
    st.data(),
)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_latin_draws_every_value_of_each_variable_evenly(
    axes: list[int], repeat: int, seed: int, data: st.DataObject
) -> None:
    space = Space(prompts=(("",),), axes=tuple(axes), repeat=repeat)
    n = data.draw(st.integers(1, min(space.size, 200)))
    stats = SampleStats()
    request = SampleRequest(n=n, seed=seed, strategy="latin")

    points = [space.point(i) for i in sample_indices(space, request, stats)]

    # Each value N // k or N // k + 1 times; a draw that had to leave the rounds (every
    # combination they allowed was taken) may put one value off by one more.
    slack = stats.fallbacks
    for axis, size in enumerate((*axes, repeat)):
        counts = Counter((*point.axes, point.repeat)[axis] for point in points)
        low = n // size
        assert all(low - slack <= counts[v] <= low + 1 + slack for v in range(size)), counts


def test_latin_stays_in_its_rounds_when_the_sample_is_a_small_part_of_the_space() -> None:
    space = Space(prompts=(("",),), axes=(7, 5, 4, 3), repeat=2)
    stats = SampleStats()

    drawn = list(sample_indices(space, SampleRequest(n=200, seed=1, strategy="latin"), stats))

    assert stats.fallbacks == 0
    for axis, size in enumerate(space.axes):
        counts = Counter(space.point(i).axes[axis] for i in drawn)
        assert set(counts.values()) <= {200 // size, 200 // size + 1}


def test_latin_covers_a_variant_prompts_options_evenly() -> None:
    tree = prompt_tree([3, 5])
    space = Space(prompts=(tree,), axes=(4,), repeat=1)

    points = [space.point(i) for i in draw(space, 20, 11, "latin")]

    assert Counter(p.within // 5 for p in points) == {0: 7, 1: 7, 2: 6} or sorted(
        Counter(p.within // 5 for p in points).values()
    ) == [6, 7, 7]
    assert sorted(Counter(p.within % 5 for p in points).values()) == [4] * 5
    assert sorted(Counter(p.axes[0] for p in points).values()) == [5] * 4


def test_a_weighted_option_is_drawn_in_proportion() -> None:
    pick = Pick("c", (Option(("a",), 3.0), Option(("b",), 1.0)))
    space = Space(prompts=((pick,),), axes=(1000,), repeat=1)

    points = [space.point(i) for i in draw(space, 400, 5, "random")]
    share = sum(p.within == 0 for p in points) / len(points)

    assert 0.7 < share < 0.8


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.integers(1, 4), min_size=1, max_size=3),
    st.integers(1, 30),
    seeds,
    strategies,
)
def test_every_sampled_job_is_a_job_of_the_full_manifest(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], n: int, seed: int, strategy: str
) -> None:
    folder = tmp_path_factory.mktemp("sample")
    grid = "".join(
        f"  k{i}: [{', '.join(str(v) for v in range(s))}]\n" for i, s in enumerate(sizes)
    )
    names = " ".join(f"{{k{i}}}" for i in range(len(sizes)))
    text = f"model: {KLING}\nprompts: ['a {{red|green}} {names}']\ngrid:\n{grid}"
    (folder / "full.yaml").write_text(text, encoding="utf-8")
    (folder / "sampled.yaml").write_text(
        text + f"sample: {{n: {n}, seed: {seed}, strategy: {strategy}}}\n", encoding="utf-8"
    )

    full = {job.key: job for job in load_manifest(folder / "full.yaml").jobs()}
    sampled = list(load_manifest(folder / "sampled.yaml").jobs())

    assert len(sampled) == min(n, len(full))
    for job in sampled:
        assert full[job.key].inputs == job.inputs
        assert full[job.key].variables == job.variables
