"""The transition table: what a job may go through, and who may move it."""

from __future__ import annotations

from genbatch.lifecycle import Actor, Move, moves_from
from genbatch.states import TERMINAL_STATES, JobState


def reachable_from(
    start: JobState, *, actors: frozenset[Actor] = frozenset(Actor)
) -> set[JobState]:
    """The states a job in ``start`` can get to by moves of ``actors``."""
    seen = {start}
    frontier = [start]
    while frontier:
        state = frontier.pop()
        for move in moves_from(state):
            if move.transition.actors & actors and move.transition.target not in seen:
                seen.add(move.transition.target)
                frontier.append(move.transition.target)
    return seen


WITHOUT_THE_USER = frozenset(Actor) - {Actor.USER}


def test_every_state_can_be_reached_from_pending() -> None:
    assert reachable_from(JobState.PENDING) == set(JobState)


def test_a_finished_job_moves_again_only_when_the_user_asks() -> None:
    for state in TERMINAL_STATES - {JobState.DONE}:
        assert [(m, m.transition.actors) for m in moves_from(state)] == [
            (Move.RESET, frozenset({Actor.USER}))
        ]
    assert moves_from(JobState.DONE) == []


def test_a_generation_that_succeeded_is_never_failed_nor_sent_again_unless_the_user_asks() -> None:
    assert reachable_from(JobState.FETCHING, actors=WITHOUT_THE_USER) == {
        JobState.FETCHING,
        JobState.DONE,
        JobState.EXPIRED,
    }


def test_a_submit_whose_answer_may_have_landed_is_never_sent_again_by_the_runner() -> None:
    to_pending = {
        m for m in moves_from(JobState.UNKNOWN) if m.transition.target is JobState.PENDING
    }

    assert to_pending == {Move.RESET}
    assert not Move.RESET.allows(JobState.UNKNOWN, Actor.RUNNER)
    assert Move.RESET.allows(JobState.UNKNOWN, Actor.USER)


def test_the_runner_must_hold_a_job_in_flight_to_move_it_but_not_a_pending_one() -> None:
    assert Move.ACCEPT.needs_holder(Actor.RUNNER)
    assert Move.SUCCEED.needs_holder(Actor.RUNNER)
    assert not Move.CLAIM.needs_holder(Actor.RUNNER)
    assert not Move.FAIL_MODEL.needs_holder(Actor.RUNNER)
    assert not Move.CANCELLED.needs_holder(Actor.CANCEL)


def test_cancel_may_only_end_requests_it_asked_the_api_about() -> None:
    by_cancel = {m for m in Move if Actor.CANCEL in m.transition.actors}

    assert by_cancel == {Move.CANCELLED, Move.EXPIRE_ON_CANCEL}
    assert not Move.CANCELLED.allows(JobState.FETCHING, Actor.CANCEL)
    # A job downloading is the runner's: a cancel told "gone" never expires it.
    assert not Move.EXPIRE_ON_CANCEL.allows(JobState.FETCHING, Actor.CANCEL)


def test_a_late_answer_is_recorded_on_a_job_a_takeover_marked_unknown() -> None:
    assert Move.ACCEPT.allows(JobState.UNKNOWN, Actor.RUNNER)
    assert Move.INTERRUPT.allows(JobState.SUBMITTING, Actor.TAKEOVER)
    assert not Move.INTERRUPT.allows(JobState.QUEUED, Actor.TAKEOVER)
