"""The built book in a real browser: headless Chromium (offline) draws every plotly figure,
a slider changes its figure, and no page has a JavaScript error or an external request.

Runs on a tiny book built in the test session; set ``FLATNESS_BOOK_HTML=_build/html`` to check
the real book instead. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from flatness.paths import repo_root

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = repo_root() / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
]


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if self.path == "/favicon.ico":  # browsers ask for it; the book has none
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture(scope="module", params=["demo", "chapters"])
def html_dir(request, tmp_path_factory) -> Path:
    """The tiny demo book, and the real chapters executed at smoke scale (or
    ``FLATNESS_BOOK_HTML``, a book built beforehand, instead of the latter)."""
    if request.param == "demo":
        from flatness.book.demo import demo_html

        return demo_html(tmp_path_factory.getbasetemp() / "tiny-book")
    if os.environ.get("FLATNESS_BOOK_HTML"):
        path = Path(os.environ["FLATNESS_BOOK_HTML"]).resolve()
        if not (path / "index.html").is_file():
            pytest.fail(f"FLATNESS_BOOK_HTML={path} has no index.html: build the book first")
        return path
    report = request.getfixturevalue("smoke_book")
    if not report.html_ok:
        pytest.fail(f"the smoke-scale book did not build: {report.log}")
    return report.html_dir


@pytest.fixture(scope="module")
def server(html_dir: Path) -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(html_dir)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def _pages(html_dir: Path) -> list[str]:
    chapters = sorted((html_dir / "book" / "chapters").glob("*.html"))
    return ["index.html", *(p.relative_to(html_dir).as_posix() for p in chapters)]


def _open(browser, url: str):
    """Open ``url`` offline: any non-local request is aborted and recorded as a problem."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" else None)
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}")
            if r.status >= 400 else None)

    def route(r):
        if r.request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
            r.continue_()
        else:
            problems.append(f"external request: {r.request.url}")
            r.abort()

    page.route("**/*", route)
    page.goto(url, wait_until="load")
    return page, problems


_FIGURE_STATE = """gd => Array.from(gd.querySelectorAll(
        '.main-svg path, .main-svg rect.point, .main-svg image'))
    .map(e => e.tagName === 'image'
         ? (e.getAttribute('xlink:href') || e.getAttribute('href'))
         : (e.getAttribute('d') || e.getAttribute('height')))
    .join('|')"""


def test_every_page_loads_without_errors(browser, server, html_dir: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for rel in _pages(html_dir):
        page, problems = _open(browser, f"{server}/{rel}")
        page.wait_for_timeout(300)
        shot = ARTIFACTS / f"{html_dir.parent.parent.name}_{rel.replace('/', '_')}.png"
        page.screenshot(path=str(shot), full_page=True)
        page.close()
        assert not [p for p in problems if "Failed to load resource" not in p], (rel, problems)
        assert not problems, (rel, problems)


def test_figures_are_drawn_and_sliders_change_them(browser, server, html_dir: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    chapters = _pages(html_dir)[1:]
    assert chapters, f"no chapter page under {html_dir}/book/chapters"
    n_figures = n_sliders = 0
    for rel in chapters:
        sliders_on_page = changed_on_page = 0
        page, problems = _open(browser, f"{server}/{rel}")
        figures = page.locator(".plotly-graph-div")
        if figures.count():
            page.wait_for_selector(".plotly-graph-div .main-svg", timeout=15_000)
        for i in range(figures.count()):
            figure = figures.nth(i)
            figure.scroll_into_view_if_needed()
            assert figure.locator("svg.main-svg").count() > 0, (rel, i, "not drawn")
            before = figure.evaluate(_FIGURE_STATE)
            assert before.strip("|"), (rel, i, "the figure is empty")
            n_figures += 1
            rail = figure.locator(".slider-rail-touch-rect")
            if rail.count():
                sliders_on_page += 1
                changed_on_page += _slide_until_change(page, figure, rail.first, before)
            figure.screenshot(
                path=str(ARTIFACTS / f"{html_dir.parent.parent.name}_{Path(rel).stem}_fig{i}.png"))
        page.close()
        assert not problems, (rel, problems)
        assert changed_on_page or not sliders_on_page, (rel, "no slider changed its figure")
        n_sliders += changed_on_page
    assert n_figures > 0 and n_sliders > 0


def test_one_menu_per_choice_changes_its_figure(browser, server, html_dir: Path) -> None:
    """A figure over several choices has one menu per choice; each menu redraws the figure."""
    n_menus = 0
    for rel in _pages(html_dir)[1:]:
        page, problems = _open(browser, f"{server}/{rel}")
        boxes = page.locator(".flatness-controls")
        for i in range(boxes.count()):
            box = boxes.nth(i)
            figure_id = box.get_attribute("id").removesuffix("-controls")
            figure = page.locator(f"#{figure_id}")
            figure.scroll_into_view_if_needed()
            page.wait_for_selector(f"#{figure_id} .main-svg", timeout=15_000)
            menus = box.locator("select")
            assert menus.count() >= 2, (rel, i, "a linked figure needs a menu per choice")
            for m in range(menus.count()):
                menu = menus.nth(m)
                if menu.locator("option").count() < 2:
                    continue
                before = figure.evaluate(_FIGURE_STATE)
                menu.select_option(index=menu.locator("option").count() - 1)
                page.wait_for_function(f"gd => ({_FIGURE_STATE})(gd) !== {before!r}",
                                       arg=figure.element_handle(), timeout=5_000)
                n_menus += 1
        page.close()
        assert not problems, (rel, problems)
    assert n_menus > 0, "no page has a figure with one menu per choice"


def _slide_until_change(page, figure, rail, before: str) -> bool:
    """Click the slider's rail at several positions until the figure changes.

    Some steps may legitimately draw the same frame (a mean over one seed equals that seed),
    so one unchanged step is not a failure; a slider whose every step leaves the figure as it
    was is reported by the caller.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = rail.bounding_box()
    for fraction in (1.0, 0.5, 0.75, 0.25):
        x = box["x"] + 2 + (box["width"] - 4) * fraction
        page.mouse.click(x, box["y"] + box["height"] / 2)
        try:
            page.wait_for_function(f"gd => ({_FIGURE_STATE})(gd) !== {before!r}",
                                   arg=figure.element_handle(), timeout=2_000)
            return True
        except PlaywrightTimeout:
            continue
    return False
