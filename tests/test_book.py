"""The book machinery end to end on a tiny generated book: papermill, Jupyter Book, offline
plotly.js, failure handling, the toc, the reproducibility page, output-free sources."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import nbformat
import pytest

from flatness.book.build import build_book, parse_warnings
from flatness.book.demo import demo_html, make_demo_book
from flatness.book.reproducibility import render
from flatness.book.sphinx_plotly import plotly_js_path
from flatness.book.toc import available_toc, read_chapters, select_chapters
from flatness.cli import main
from flatness.cli.book import parse_value
from flatness.errors import FlatnessError
from flatness.paths import repo_root
from flatness.results import Result, write_result

CDN = re.compile(r"cdn\.plot\.ly|cdn\.jsdelivr\.net/npm/plotly|cdnjs\.cloudflare\.com/ajax/libs/"
                 r"plotly|require\.min\.js|embed-amd\.js")


@pytest.fixture(scope="session")
def tiny_book(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp() / "tiny-book"
    demo_html(base)
    return base


def test_tiny_book_builds_without_warnings(tiny_book: Path) -> None:
    log = (tiny_book / "_build" / "book-build.log").read_text()
    assert parse_warnings(log) == [], log
    html = tiny_book / "_build" / "html"
    for name in ("01_demo", "02_demo"):
        page = (html / "book" / "chapters" / f"{name}.html").read_text()
        assert 'src="../../_static/plotly.min.js"' in page
        assert not CDN.search(page), CDN.search(page)
        assert not re.search(r'<script[^>]+src="https?://', page)
        assert page.count('class="plotly-graph-div flatness-figure"') == 2  # show + explore
        assert page.count("const THEBE_JS_URL") <= 1
    served = html / "_static" / "plotly.min.js"
    assert served.read_bytes() == plotly_js_path().read_bytes()


def test_parameters_reach_the_executed_notebook(tiny_book: Path) -> None:
    nb = nbformat.read(tiny_book / "book" / "chapters" / "01_demo.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "rho = 0.2" in injected[0].source
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("text/html" in o.get("data", {}) for o in outputs)
    assert not any(o.output_type == "error" for o in outputs)
    assert (tiny_book / "book" / "reproducibility.md").is_file()


def test_no_execute_rebuild_is_fast_and_keeps_notebooks(tiny_book: Path) -> None:
    executed = tiny_book / "book" / "chapters" / "01_demo.ipynb"
    before = executed.stat().st_mtime_ns
    start = time.perf_counter()
    assert main(["book", "--root", str(tiny_book), "--no-execute"]) == 0
    assert time.perf_counter() - start < 60
    assert executed.stat().st_mtime_ns == before


def test_failing_chapter_fails_the_build_but_others_build(tmp_path: Path, capsys) -> None:
    make_demo_book(tmp_path)
    bad = tmp_path / "notebooks" / "02_demo.ipynb"
    nb = nbformat.read(bad, as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace("fail = False", "fail = True")
    nbformat.write(nb, bad)
    assert main(["book", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert re.search(r"02_demo\s+failed.*demo chapter asked to fail", out), out
    assert re.search(r"01_demo\s+ok", out), out
    html = tmp_path / "_build" / "html" / "book" / "chapters"
    assert (html / "01_demo.html").is_file() and (html / "02_demo.html").is_file()
    failed = nbformat.read(tmp_path / "book" / "chapters" / "02_demo.ipynb", as_version=4)
    errors = [o for c in failed.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors and errors[0].evalue == "demo chapter asked to fail"


def test_bad_parameter_stops_at_the_check_cell(tmp_path: Path) -> None:
    from flatness.book.execute import execute_chapter

    make_demo_book(tmp_path, chapters=("01_demo",))
    chapter = read_chapters(tmp_path)[0]
    run = execute_chapter(chapter, {"rho": -1.0}, root=tmp_path)
    assert run.status == "failed" and "rho must be >= 0" in run.error
    nb = nbformat.read(chapter.executed, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[2].outputs[0].output_type == "error"  # parameters, injected, check
    assert all(not c.outputs for c in code[3:])


def test_papermill_alone_refuses_a_parameter_the_chapter_does_not_take(tmp_path: Path) -> None:
    """papermill only warns about ``-p rhoo 0.5``; the chapter's check cell refuses it."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from flatness.book.execute import CurrentPythonKernelManager

    make_demo_book(tmp_path, chapters=("01_demo",))
    chapter = read_chapters(tmp_path)[0]
    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(
            str(chapter.source), str(tmp_path / "out.ipynb"), parameters={"rhoo": 0.5},
            kernel_name="python3", kernel_manager_class=CurrentPythonKernelManager,
            progress_bar=False, cwd=str(tmp_path))
    assert info.value.ename == "FlatnessError"
    assert str(info.value.evalue) == (
        "this chapter does not take parameter(s) rhoo; it takes: scale, rho, fail")


def test_unknown_parameter_and_chapter_are_rejected(tmp_path: Path) -> None:
    make_demo_book(tmp_path)
    with pytest.raises(FlatnessError, match="rhoo"):
        build_book(tmp_path, parameters={"rhoo": 1})
    with pytest.raises(FlatnessError, match="no chapter named 'nine'"):
        build_book(tmp_path, chapters=["nine"])


def test_toc_lists_the_regime_map_five_chapters_and_results_page_and_prunes_missing(
        tmp_path: Path) -> None:
    chapters = read_chapters(repo_root())
    assert [c.name for c in chapters] == [
        "00_regimes", "01_robust_features", "02_lr_decay", "03_sharpness", "04_minimizers",
        "05_complementarity", "06_findings"]
    assert all(c.source.is_file() for c in chapters)  # every toc entry has its notebook
    assert [c.name for c in select_chapters(chapters, ["04", "02_lr_decay"])] == [
        "04_minimizers", "02_lr_decay"]
    make_demo_book(tmp_path)
    (tmp_path / "book" / "chapters").mkdir(parents=True)
    (tmp_path / "book" / "chapters" / "02_demo.ipynb").write_text("{}")
    missing = available_toc(tmp_path, tmp_path / "toc.yml")
    toc = (tmp_path / "toc.yml").read_text()
    assert missing == ["01_demo"] and "02_demo" in toc and "01_demo" not in toc
    assert "book/reproducibility" in toc


def test_reproducibility_page_lists_result_files(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_result(results / "cpu" / "ch2" / "lr_decay.json", Result(
        kind="transfer_curve", scale="cpu", config={}, data={}, seeds=[0, 1],
        data_copy="cifar10-jpeg", provenance={"code_commit": "abcdef0123456789",
                                              "device": "cpu x2", "wall_time_s": 750.0}))
    (results / "smoke").mkdir()
    (results / "smoke" / "broken.json").write_text("{not json")
    page = render(results)
    row = next(line for line in page.splitlines() if "lr_decay" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["`cpu/ch2/lr_decay.json`", "transfer_curve", "cpu", "0, 1", "cpu x2",
                     "cifar10-jpeg", "abcdef0123", "12.5 min", "", ""]
    assert "`smoke/broken.json` | unreadable" in page
    write_result(results / "cpu" / "sharpness.json", Result(
        kind="chapter", scale="cpu", config={}, data={}, seeds=[0],
        data_copy="cifar10-jpeg", provenance={"code_commit": "abcdef0123456789", "device": "cpu",
                                              "wall_time_s": 1.2, "compute_time_s": 9090.0}))
    row = next(line for line in render(results).splitlines() if "sharpness" in line)
    assert [c.strip() for c in row.strip("|").split("|")][-3:-1] == ["1 s", "2.5 h"]
    assert "No result file" in render(tmp_path / "nothing")
    assert "ledger" not in render(results)
    # the ledger's job records are summarised apart, never listed as unreadable result files
    from flatness.store import write_entry

    ledger = results / "ledger"
    write_entry(ledger / "train" / "train-a.json", {"provenance": {"wall_time_s": 5400}})
    write_entry(ledger / "transfer" / "transfer-b.json", {"wall_time_s": 90.0})
    write_entry(ledger / "transfer" / "transfer-c.json", {"wall_time_s": 30.0})
    (ledger / "runs" / "cifar10-vgg19_bn-sgd-s1000-x").mkdir(parents=True)
    page = render(results)
    assert "`ledger/" not in page and page.count("unreadable") == 1  # smoke/broken.json only
    assert "| `train` jobs | 1 | 1.5 h |" in page and "| `transfer` jobs | 2 | 2.0 min |" in page
    assert "| target runs (final weights) | 1 |  |" in page


def test_parse_value_reads_yaml() -> None:
    assert parse_value("0.5") == 0.5 and parse_value("[0, 1]") == [0, 1]
    assert parse_value("true") is True and parse_value("null") is None
    assert parse_value("4/255") == "4/255" and parse_value("cpu") == "cpu"


def test_source_notebooks_are_output_free() -> None:
    for path in sorted((repo_root() / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, (
                    f"{path.name} cell {i} has outputs: clear them (jupyter nbconvert "
                    f"--clear-output --inplace {path})")


def test_parameters_table_lists_every_parameter_with_type_value_and_help() -> None:
    from flatness.book.execute import declared_parameters, parameters_table

    notebook = repo_root() / "notebooks" / "05_complementarity.ipynb"
    declared = declared_parameters(notebook)
    rows = parameters_table(declared, {"scale": "cpu", "recompute": False}).splitlines()
    assert len(rows) == 2 + len(declared)
    assert rows[2] == ('| `scale` | str | `"cpu"` (default `"auto"`) | auto (committed results: '
                       "gpu, else cpu), smoke, cpu, gpu, paper |")
    factor = next(r for r in rows if r.startswith("| `lgv_lr_factor`"))
    assert factor == ("| `lgv_lr_factor` | Optional[float] | `None` | LGV: lr as a multiple of "
                      "the initial lr (default 2) |")
    assert any(r.startswith("| `recompute` | bool | `False` |") for r in rows)  # as its default


def test_provenance_names_where_the_jobs_ran_who_summarised_and_the_precision() -> None:
    from flatness.study.report import devices_text, provenance_markdown

    assert devices_text({"device": "cpu:x86_64 x2 threads"}) == "cpu:x86_64 x2 threads"
    ran = {"cuda:NVIDIA H200": 40, "cpu:x86_64 x1 threads": 1}
    assert devices_text({"device": "cpu:x86_64 x2 threads", "compute_devices": ran}) == (
        "cuda:NVIDIA H200 (40 jobs), cpu:x86_64 x1 threads (1 job); "
        "summarised on cpu:x86_64 x2 threads")
    assert devices_text({"device": "cuda:NVIDIA H200", "compute_devices": ran}).endswith("(1 job)")
    result = Result(kind="chapter", scale="cpu", config={}, data={}, seeds=[0], data_copy="c",
                    provenance={"device": "cpu:x86_64 x2 threads", "compute_devices": ran})
    assert "| device | cuda:NVIDIA H200 (40 jobs)" in provenance_markdown(result)
    assert "| precision | unrecorded |" in provenance_markdown(result)
    result.provenance["precision"] = "bf16"
    assert "| precision | bf16 autocast |" in provenance_markdown(result)
    assert "| targets | unrecorded |" in provenance_markdown(result)  # an older result
    result.provenance["target_accuracy"] = {"vgg19_bn@0.25": 0.575, "resnet18@0.25": 0.744}
    assert "| targets | 2 CIFAR-10 targets, 57.5-74.4 % test accuracy |" in provenance_markdown(
        result)


def test_a_smoke_page_says_which_committed_result_it_stands_in_for_and_why(tmp_path, monkeypatch):
    """A chapter whose committed cpu result is stale is computed at smoke: its provenance says
    that the cpu result exists, why it is not shown and how to recompute it; a chapter without
    a committed result says nothing of the kind."""
    from flatness.results import write_result
    from flatness.study.chapter import committed_path, stale_results
    from flatness.study.report import provenance_markdown

    monkeypatch.setenv("FLATNESS_RESULTS", str(tmp_path))
    stale = Result(kind="chapter", scale="cpu", config={"chapter": "lr_decay",
                                                         "summary_version": 0},
                   data={}, seeds=[0], data_copy="c", provenance={})
    path = committed_path("lr_decay", "cpu")
    path.parent.mkdir(parents=True)
    write_result(path, stale)
    assert list(stale_results("lr_decay")) == ["cpu"] and stale_results("sharpness") == {}

    def smoke(chapter: str) -> Result:
        return Result(kind="chapter", scale="smoke", config={"chapter": chapter}, data={},
                      seeds=[0], data_copy="c", provenance={"device": "cpu"})

    text = provenance_markdown(smoke("lr_decay"))
    assert "**Smoke scale**" in text
    assert ("The committed `cpu` result of this chapter is not shown: its summary has version 0"
            in text)
    assert "`python -m flatness chapter lr_decay --scale cpu`" in text
    assert "committed" not in provenance_markdown(smoke("sharpness"))
