"""Outcome accounting and the one definition of a successful sweep."""

from __future__ import annotations

from checkout_sweeper.engine.tally import SessionOutcome, SweepResult, Tally


def test_success_means_nothing_failed_and_nothing_left_open():
    assert SweepResult("a", dry_run=False, remaining_open_count=0).succeeded
    assert not SweepResult("d", dry_run=False).succeeded  # what is left is unknown
    assert not SweepResult("b", dry_run=False, remaining_open_count=1).succeeded
    assert not SweepResult("c", dry_run=False, failed=[{"id": "cs_1", "error": "x"}]).succeeded


def test_a_dry_run_succeeds_with_sessions_open_but_not_with_failures():
    assert SweepResult("a", dry_run=True, remaining_open_count=40).succeeded
    assert not SweepResult("b", dry_run=True, failed=[{"id": "cs_1", "error": "x"}]).succeeded


def test_the_tally_counts_every_outcome_and_reports_each_one():
    seen: list[SessionOutcome] = []
    tally = Tally("s", False, on_outcome=seen.append)
    for outcome in ("expired", "expired", "already_closed", "failed"):
        tally.found()
        tally.record(SessionOutcome(f"cs_{len(seen)}", outcome, "boom"))  # type: ignore[arg-type]
    tally.request()
    result = tally.finish(passes=2, duration_s=1.5)
    assert (result.expired_count, result.already_closed_count) == (2, 1)
    assert result.failed == [{"id": "cs_3", "error": "boom"}] and tally.has_failed("cs_3")
    assert tally.progress.handled == tally.progress.found == 4
    assert (result.passes, result.stripe_requests, result.duration_ms) == (2, 1, 1500)
    assert len(seen) == 4


def test_would_expire_is_in_the_data_of_dry_runs_only():
    assert "would_expire" in SweepResult("a", dry_run=True).as_data()
    assert "would_expire" not in SweepResult("b", dry_run=False).as_data()
