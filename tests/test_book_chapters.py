"""Every chapter notebook executes under papermill at smoke scale and the book builds cleanly."""

from __future__ import annotations


def test_every_chapter_executes_at_smoke_scale(smoke_book):
    failed = {run.name: run.error for run in smoke_book.runs if run.status != "ok"}
    assert smoke_book.runs, "no chapter was executed"
    assert not failed, failed


def test_book_builds_without_warnings(smoke_book):
    assert smoke_book.html_ok, smoke_book.log
    assert not smoke_book.warnings, smoke_book.warnings
    for run in smoke_book.runs:
        assert (smoke_book.html_dir / "book" / "chapters" / f"{run.name}.html").is_file()
