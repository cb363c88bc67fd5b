"""The review page: the gallery (``gallery_page``) served live, with rating controls.

What differs from the static gallery: media are fetched from the server by number
(``media/<n>``, never by path), each output file has keep/reject/star buttons and a note
field, the header has a rating filter and the grids a "compare two settings" control. Values
are escaped as in the gallery and still no data goes into the script: a file's number and
rating are attributes of its ``div.rate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from genbatch import gallery_assets, review_assets
from genbatch.gallery_page import Page, esc, source_hash
from genbatch.ratings import NOTE_LIMIT, STARS

if TYPE_CHECKING:
    from genbatch.gallery_layout import Section
    from genbatch.ledger import JobOutputs, OutputRecord


_STYLE = gallery_assets.STYLE + review_assets.STYLE
_SCRIPT = gallery_assets.SCRIPT + review_assets.SCRIPT

POLICY = (
    f"default-src 'none'; style-src '{source_hash(_STYLE)}'; "
    f"script-src '{source_hash(_SCRIPT)}'; img-src 'self'; media-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Files and ratings from the page's own origin only; sent as a header and in the page."""


class ReviewPage(Page):
    """The gallery of a run with a rating bar under each output file."""

    kind = "review"
    style = _STYLE
    script = _SCRIPT

    def policy(self) -> str:
        return POLICY

    def source(self, output: OutputRecord, path: str) -> str:
        return f"media/{output.id}"

    def under_media(self, item: JobOutputs, present: Sequence[OutputRecord]) -> str:
        return "".join(
            _rating_bar(item, output, len(present) > 1 and index + 1)
            for index, output in enumerate(present)
        )

    def extra_controls(self) -> str:
        wanted = [("", "every rating"), ("kept", "kept"), ("rejected", "rejected")]
        wanted += [("unrated", "unrated")] + [(str(n), f"{n}+ stars") for n in STARS]
        options = "".join(f'<option value="{value}">{label}</option>' for value, label in wanted)
        return (
            f'<label>show <select id="rating-filter">{options}</select></label>'
            '<span id="review-counts"><span class="badge state-done" data-count="kept"></span>'
            '<span class="badge state-failed" data-count="rejected"></span>'
            '<span class="badge" data-count="unrated"></span></span>'
            '<span class="keys"><kbd>←</kbd><kbd>→</kbd> move · <kbd>k</kbd> keep · '
            "<kbd>r</kbd> reject · <kbd>1</kbd>-<kbd>5</kbd> stars · <kbd>0</kbd> no stars · "
            "<kbd>n</kbd> note</span>"
        )

    def grid_controls(self, grid: Section) -> str:
        if not grid.swept:
            return ""
        keys = "".join(f'<option value="{esc(key)}">{esc(key)}</option>' for key in grid.swept)
        return (
            f'<span class="compare">compare <select aria-label="key">{keys}</select>'
            '<select aria-label="first value"></select> vs '
            '<select aria-label="second value"></select>'
            '<button type="button" data-compare="show">side by side</button>'
            '<button type="button" data-compare="off">all values</button></span>'
        )


def _rating_bar(item: JobOutputs, output: OutputRecord, number: int | bool) -> str:
    rating = item.ratings.get(output.position)
    verdict = rating.verdict.value if rating and rating.verdict else ""
    stars = str(rating.stars) if rating and rating.stars else ""
    note = rating.note if rating and rating.note else ""
    which = f'<span class="which">#{number}</span>' if number else ""
    star_buttons = "".join(
        f'<button type="button" data-stars="{n}" title="{n} star{"s" if n > 1 else ""} ({n})">'
        "★</button>"
        for n in STARS
    )
    return (
        f'<div class="rate" data-output="{output.id}" data-verdict="{verdict}" '
        f'data-stars="{stars}">{which}'
        '<button type="button" data-verdict="kept" title="keep (k)">keep</button>'
        '<button type="button" data-verdict="rejected" title="reject (r)">reject</button>'
        f'<span class="stars">{star_buttons}</span>'
        f'<input class="note" type="text" maxlength="{NOTE_LIMIT}" placeholder="note (n)" '
        f'aria-label="note" value="{esc(note)}"></div>'
    )
