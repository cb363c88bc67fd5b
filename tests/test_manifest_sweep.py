"""Sweep designs beyond the full grid: prompt variants, wildcard files, ``sample:`` and
``max_jobs:`` per block, through ``load_manifest`` on real files."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genbatch.catalog import find_model
from genbatch.errors import ManifestError
from genbatch.jobs import JobSpec, job_key
from genbatch.manifest import Manifest, load_manifest
from genbatch.manifest.locations import Source
from genbatch.manifest.variants import Pick, count_of, decode, parse_choices

KLING = "kling/kling-2-6/pro/text-to-video"
HEAD = f"model: {KLING}\n"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load(text: str, files: dict[str, str] | None = None) -> Manifest:
    for name, content in (files or {}).items():
        path = Path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    Path("sweep.yaml").write_text(HEAD + text, encoding="utf-8")
    return load_manifest("sweep.yaml")


def error_of(text: str, files: dict[str, str] | None = None) -> str:
    with pytest.raises(ManifestError) as caught:
        load(text, files).validate()
    assert "\n" not in str(caught.value)
    return str(caught.value)


def prompts_of(manifest: Manifest) -> list[str]:
    return [job.inputs["prompt"] for job in manifest.jobs()]


def keys_of(jobs: list[JobSpec]) -> list[str]:
    return [job.key for job in jobs]


# -- variants ---------------------------------------------------------------------------------


def test_a_variant_makes_one_prompt_per_option_and_a_variable_of_its_own() -> None:
    m = load('prompts: ["a {red|green|blue} fox"]\n')

    jobs = list(m.jobs())

    assert m.job_count == 3
    assert [j.inputs["prompt"] for j in jobs] == ["a red fox", "a green fox", "a blue fox"]
    assert [j.variables for j in jobs] == [
        {"variant_1": "red"},
        {"variant_1": "green"},
        {"variant_1": "blue"},
    ]


def test_variants_combine_with_each_other_and_the_grid_in_expansion_order() -> None:
    m = load(
        'prompts: ["a {color=red|green} fox at {dawn|dusk}", "a {animal}"]\ngrid: {animal: [owl]}\n'
    )

    assert prompts_of(m) == [
        "a red fox at dawn",
        "a red fox at dusk",
        "a green fox at dawn",
        "a green fox at dusk",
        "a owl",
    ]
    assert list(next(iter(m.jobs())).variables) == ["color", "variant_2", "animal"]
    assert m.blocks[0].variables == ("color", "variant_2")


def test_options_may_hold_template_fields_and_nested_variants() -> None:
    m = load('prompts: ["{a {animal}|{big|small} dog}"]\ngrid: {animal: [owl]}\n')

    jobs = list(m.jobs())

    assert [j.inputs["prompt"] for j in jobs] == ["a owl", "big dog", "small dog"]
    assert jobs[0].variables["variant_1"] == "a owl"
    assert jobs[1].variables == {"variant_1": "big dog", "variant_2": "big", "animal": "owl"}


def test_a_job_without_variants_keeps_its_key_and_a_variant_job_is_keyed_by_its_prompt() -> None:
    model = find_model(KLING)
    assert model is not None
    m = load('prompts: ["a cat", "a {cat|dog}"]\n')

    jobs = list(m.jobs())

    for job, prompt in zip(jobs, ["a cat", "a cat", "a dog"], strict=True):
        assert job.key == job_key(KLING, {**model.defaults, "prompt": prompt}, 0)


def test_format_specs_and_doubled_braces_stay_what_they_were() -> None:
    m = load('prompts: ["{take:|>4} {{red|green}} {{x}}"]\ngrid: {take: [7]}\n')

    assert prompts_of(m) == ["|||7 {red|green} {x}"]


def test_weights_do_not_change_the_full_expansion() -> None:
    m = load('prompts: ["a {9::red|1::green} fox"]\n')

    assert prompts_of(m) == ["a red fox", "a green fox"]


def test_a_variable_from_a_variant_may_name_the_output_file() -> None:
    m = load('prompts: ["a {color=red|green} fox"]\noutput: {name: "{color}-{index}"}\n')

    assert [j.file_stem for j in m.jobs()] == ["red-0", "green-1"]


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("a {red|green", "sweep.yaml:2: prompt: a { is never closed"),
        ("a {animal=red|green}", "sweep.yaml:2: prompt: a variant or wildcard sets {animal}"),
        ("a {red|{colr}}", "sweep.yaml:2: prompt: undefined template variable {colr}"),
        ("a {0::red|0::green}", "every option of variant {variant_1} has weight 0"),
    ],
)
def test_a_bad_variant_is_one_line_at_its_prompt(prompt: str, message: str) -> None:
    text = f'prompts: ["{prompt}"]\ngrid: {{animal: [owl]}}\nvars: {{color: red}}\n'

    assert message in error_of(text)


# -- wildcards --------------------------------------------------------------------------------

ANIMALS = "# animals\nred fox\n\n2::snow owl\nlynx with {green|amber} eyes\n"


def test_a_wildcard_picks_each_line_of_its_file_skipping_blanks_and_comments() -> None:
    m = load('prompts: ["a __animals__"]\n', {"wildcards/animals.txt": ANIMALS})

    jobs = list(m.jobs())

    assert [j.inputs["prompt"] for j in jobs] == [
        "a red fox",
        "a snow owl",
        "a lynx with green eyes",
        "a lynx with amber eyes",
    ]
    assert jobs[2].variables == {
        "animals": "lynx with green eyes",
        "animals_variant_1": "green",
    }


def test_wildcards_nest_and_come_from_subfolders() -> None:
    m = load(
        'prompts: ["__scene__"]\n',
        {
            "wildcards/scene.txt": "a __zoo/animals__ at dawn\nan empty road\n",
            "wildcards/zoo/animals.txt": "cat\ndog\n",
        },
    )

    assert prompts_of(m) == ["a cat at dawn", "a dog at dawn", "an empty road"]
    assert list(m.jobs())[1].variables == {"scene": "a dog at dawn", "zoo/animals": "dog"}


def test_a_wildcard_used_twice_in_a_prompt_sets_two_variables() -> None:
    m = load('prompts: ["__c__ and __c__"]\n', {"wildcards/c.txt": "red\nblue\n"})

    assert list(m.jobs())[1].variables == {"c": "red", "c_2": "blue"}


def test_a_wildcard_that_comes_back_to_itself_is_refused_naming_the_chain() -> None:
    files = {"wildcards/a.txt": "x\nsee __b__\n", "wildcards/b.txt": "\n\ny __a__\n"}

    message = error_of('prompts: ["__a__"]\n', files)

    assert message == (
        "wildcards/b.txt:3: wildcard: wildcard __a__ refers back to itself (a -> b -> a)"
    )


def test_a_missing_wildcard_file_names_the_line_that_uses_it() -> None:
    message = error_of(
        'prompts:\n  - "a cat"\n  - "a __animls__"\n', {"wildcards/animals.txt": "x"}
    )

    assert message.startswith(
        "sweep.yaml:4: wildcard: wildcard file 'wildcards/animls.txt' not found"
    )


def test_an_error_inside_a_wildcard_file_names_its_line() -> None:
    message = error_of('prompts: ["__a__"]\n', {"wildcards/a.txt": "fine\n{broken|\n"})

    assert message.startswith("wildcards/a.txt:2: a: a { is never closed")


def test_an_empty_wildcard_file_is_refused() -> None:
    message = error_of('prompts: ["__a__"]\n', {"wildcards/a.txt": "# nothing\n\n"})

    assert message == "sweep.yaml:2: wildcard: wildcard file 'wildcards/a.txt' has no entries"


def test_a_literal_double_underscore_word_goes_through_a_variable() -> None:
    m = load('vars: {init: __init__}\nprompts: ["call {init}"]\n')

    assert prompts_of(m) == ["call __init__"]


def test_editing_a_wildcard_file_changes_the_manifest_digest() -> None:
    first = load('prompts: ["__a__"]\n', {"wildcards/a.txt": "cat\n"}).digest
    second = load('prompts: ["__a__"]\n', {"wildcards/a.txt": "dog\n"}).digest

    assert first != second


# -- sample: ----------------------------------------------------------------------------------

GRID = "prompts: ['a {a} {b}']\ngrid: {a: [1, 2, 3, 4, 5], b: [x, y, z]}\nrepeat: 2\n"


def test_a_sample_draws_n_distinct_jobs_of_the_full_space_numbered_from_0() -> None:
    full = {j.key: j for j in load(GRID).jobs()}
    m = load(GRID + "sample: {n: 7, seed: 3}\n")

    jobs = list(m.validated_jobs())

    assert m.job_count == 7 and m.blocks[0].space_size == 30
    assert [j.ordinal for j in jobs] == list(range(7))
    for job in jobs:
        same = full[job.key]
        assert (job.inputs, job.variables, job.repeat_index) == (
            same.inputs,
            same.variables,
            same.repeat_index,
        )


def test_raising_n_keeps_the_jobs_already_drawn_and_adds_new_ones() -> None:
    small = list(load(GRID + "sample: {n: 5, seed: 3}\n").jobs())
    large = list(load(GRID + "sample: {n: 12, seed: 3}\n").jobs())

    assert keys_of(large[:5]) == keys_of(small)
    assert [j.file_stem for j in large[:5]] == [j.file_stem for j in small]


def test_another_seed_draws_other_jobs() -> None:
    one = keys_of(list(load(GRID + "sample: {n: 5, seed: 1}\n").jobs()))
    two = keys_of(list(load(GRID + "sample: {n: 5, seed: 2}\n").jobs()))

    assert one != two


def test_a_sample_larger_than_the_space_is_all_of_it() -> None:
    m = load(GRID + "sample: 100\n")

    assert m.job_count == 30
    assert sorted(keys_of(list(m.jobs()))) == sorted(keys_of(list(load(GRID).jobs())))


def test_a_sample_draws_variants_and_wildcards_too() -> None:
    files = {"wildcards/animals.txt": "cat\ndog\nowl\n"}
    full = {j.key for j in load('prompts: ["a {big|small} __animals__"]\n', files).jobs()}

    m = load('prompts: ["a {big|small} __animals__"]\nsample: {n: 4, seed: 9}\n', files)

    assert {j.key for j in m.jobs()} < full
    assert all(set(j.variables) == {"variant_1", "animals"} for j in m.jobs())


def test_a_billion_combinations_sample_without_being_listed() -> None:
    values = "[" + ", ".join(str(i) for i in range(1000)) + "]"
    m = load(
        f"prompts: ['{{a}} {{b}} {{c}}']\ngrid: {{a: {values}, b: {values}, c: {values}}}\n"
        "sample: {n: 50, seed: 1, strategy: latin}\n"
    )

    assert m.blocks[0].space_size == 10**9
    assert m.validate() == 50


def test_weights_make_an_option_more_likely_and_weight_0_never_drawn() -> None:
    m = load(
        "prompts: ['a {4::red|0::blue|1::green} {b}']\ngrid: {b: [1, 2, 3, 4, 5, 6, 7, 8]}\n"
        "sample: {n: 10, weights: {b: [1, 1, 1, 1, 1, 1, 1, 1]}}\n"
    )

    colors = [j.variables["variant_1"] for j in m.jobs()]

    assert "blue" not in colors
    assert colors.count("red") > colors.count("green")


def test_latin_uses_each_value_evenly() -> None:
    m = load(
        "prompts: ['{a} {b}']\ngrid: {a: [1, 2, 3, 4, 5, 6, 7], b: [1, 2, 3]}\n"
        "sample: {n: 6, strategy: latin, seed: 4}\n"
    )

    jobs = list(m.jobs())

    assert sorted(j.variables["b"] for j in jobs) == [1, 1, 2, 2, 3, 3]
    assert len({j.variables["a"] for j in jobs}) == 6


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ("{n: 3, weights: {c: [1]}}", "sweep.yaml:5: sample.weights.c: is not a grid or zip key"),
        ("{n: 3, weights: {a: [1, 2]}}", "has 2 weights for 5 values"),
        ("{n: 3, weights: {a: [0, 0, 0, 0, 0]}}", "every weight is 0"),
        ("{n: 3, strategy: latin, weights: {a: [1, 1, 1, 1, 1]}}", "weights apply to strategy"),
        ("{n: 3, strategy: lhs}", "sample.strategy: input should be 'random' or 'latin'"),
        ("{n: 0}", "sample.n: must be at least 1, not 0"),
        ("{n: 3, sed: 1}", "sample.sed: unknown key (did you mean 'seed'?)"),
    ],
)
def test_a_bad_sample_is_one_line_naming_its_field(sample: str, message: str) -> None:
    assert message in error_of(GRID + f"sample: {sample}\n")


# -- max_jobs: --------------------------------------------------------------------------------


def test_a_block_past_its_own_max_jobs_is_refused_naming_its_space() -> None:
    message = error_of(
        "prompts: [a]\njobs:\n  - name: big\n    grid: {aspect_ratio: ['16:9', '9:16', '1:1']}\n"
        "    max_jobs: 2\n"
    )

    assert message == (
        "sweep.yaml:6: max_jobs: block 'big' would make 3 jobs (a space of 3 combinations), "
        "more than its max_jobs of 2; draw fewer with sample: N, or raise max_jobs"
    )


def test_a_sampled_block_counts_its_sample_against_max_jobs() -> None:
    m = load(
        "prompts: [a]\njobs:\n  - grid: {aspect_ratio: ['16:9', '9:16', '1:1']}\n"
        "    sample: 2\n    max_jobs: 2\n"
    )

    assert m.job_count == 2


def test_the_manifest_cap_names_the_product_it_refuses() -> None:
    message = error_of(GRID + "max_jobs: 10\n")

    assert "would make 30 jobs, more than the limit of 10" in message


# -- the variant syntax, whatever the text ----------------------------------------------------


def _no_wildcards(name: str, where: Source) -> Pick:
    raise where.error(f"no wildcard {name}")


@settings(max_examples=200)
@given(st.text(alphabet="{}|_:=a2 ", max_size=24))
def test_any_prompt_text_parses_or_is_one_line_and_every_combination_decodes(text: str) -> None:
    try:
        parts = parse_choices(text, source=Source("p.txt", 1), wildcard=_no_wildcards)
    except ManifestError as error:
        assert "\n" not in str(error) and str(error).startswith("p.txt:1: ")
        return
    for index in range(min(count_of(parts), 50)):
        picked: dict[str, str] = {}
        assert isinstance(decode(parts, index, picked), str)


@given(st.lists(st.lists(st.text(alphabet="abc ", max_size=3), min_size=2, max_size=3), max_size=3))
def test_variants_expand_to_the_product_of_their_options_in_order(
    variants: list[list[str]],
) -> None:
    text = "-".join("{" + "|".join(options) + "}" for options in variants)

    parts = parse_choices(text, source=Source("p.txt", 1), wildcard=_no_wildcards)
    texts = [decode(parts, i, {}) for i in range(count_of(parts))]

    assert texts == ["-".join(combo) for combo in itertools.product(*variants)]


def test_blocks_inherit_the_top_level_sample_and_may_drop_it() -> None:
    m = load(
        "prompts: ['a {x}']\ngrid: {x: [1, 2, 3, 4]}\nsample: {n: 2, seed: 5}\n"
        "jobs:\n  - name: sampled\n  - name: whole\n    sample: null\n"
    )

    assert [(b.name, b.job_count, b.space_size) for b in m.blocks] == [
        ("sampled", 2, 4),
        ("whole", 4, 4),
    ]
    assert [j.ordinal for j in m.jobs()] == list(range(6))


def test_a_sampled_prompt_file_keeps_each_rows_inputs() -> None:
    m = load(
        "jobs:\n  - model: wan-ai/wan-2-6/image-to-video\n"
        "    prompts: {file: stills.csv, inputs: [img_url]}\n    sample: {n: 3, seed: 2}\n",
        {
            "stills.csv": "prompt,img_url\n"
            '"the {cat|dog} turns",https://images.example.com/a.png\n'
            '"a {slow|fast} pan",https://images.example.com/b.png\n'
        },
    )

    for job in m.jobs():
        image = "a.png" if job.inputs["prompt"].startswith("the") else "b.png"
        assert job.inputs["img_url"].endswith(image)


def test_latin_ignores_the_weights_of_a_wildcard_file_with_a_warning() -> None:
    m = load(
        "prompts: ['a __animals__ {big|small}']\nsample: {n: 4, strategy: latin}\n",
        {"wildcards/animals.txt": "3::fox\nowl\n"},
    )

    assert m.warnings == [
        "sweep.yaml:2: prompt: strategy: latin ignores the weights (N::) of animals: it uses "
        "every option evenly"
    ]
    assert sorted(j.variables["animals"] for j in m.jobs()) == ["fox", "fox", "owl", "owl"]


def test_a_prompt_file_mixing_texts_templates_and_variants_expands_each_in_file_order() -> None:
    files = {"p.txt": "a cat\nthe {animal}\n{red|blue} fox\nplain {{braces}}\nlast\n"}
    m = load("vars: {animal: owl}\nprompts: {file: p.txt}\n", files)

    jobs = list(m.jobs())

    assert prompts_of(m) == ["a cat", "the owl", "red fox", "blue fox", "plain {braces}", "last"]
    assert [job.variables.get("variant_1") for job in jobs] == [
        None,
        None,
        "red",
        "blue",
        None,
        None,
    ]
    assert {job.source_line for job in jobs} == {1}  # the block's line (its model:)


def test_a_sample_of_such_a_file_draws_distinct_jobs_of_its_full_expansion() -> None:
    files = {"p.txt": "a cat\nthe {animal}\n{red|blue|green} fox\nplain\n"}
    full = load("vars: {animal: owl}\nprompts: {file: p.txt}\n", files)
    sampled = load("vars: {animal: owl}\nprompts: {file: p.txt}\nsample: {n: 4, seed: 3}\n", files)

    drawn = keys_of(list(sampled.jobs()))

    assert sampled.blocks[0].space_size == 6
    assert len(set(drawn)) == 4
    assert set(drawn) <= set(keys_of(list(full.jobs())))
