"""What a person sees in the Airflow UI, checked in headless Chromium through Playwright.

The browser is Debian's ``chromium`` (``make system-packages``), launched through Playwright's
``executable_path``; Playwright never downloads a browser here. Every check waits for what a person would
look for (a link, a graph edge, a log line, a button) and fails with :class:`UiCheckError` naming what
did not appear, the page, and any static file or API call that failed on the way, so a broken UI (wrong
base URL, missing assets) reads as such rather than as a timeout.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Request, Response

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
#: Set to a directory (``make ui-screenshots`` sets docs/images) to keep the screenshots there too.
SCREENSHOTS_ENV = "AIRBRICKS_UI_SCREENSHOTS_DIR"
VIEWPORT = {"width": 1400, "height": 900}
WAIT_MS = 20_000  # per awaited element; the SQLite-backed API can stall a few seconds under load


class UiCheckError(AssertionError):
    """The UI did not show what it should; the message says what, where, and which requests failed."""


def system_chromium() -> str:
    """Path of the system Chromium, or a clear error saying how to install it."""
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise UiCheckError(
        "no chromium on PATH: run `make system-packages` (Debian package `chromium`); "
        "Playwright's own browser download is not used"
    )


class AirflowUi:
    """One logged-in browser tab on an Airflow 3 UI.

    :param page: a fresh Playwright page.
    :param base_url: the URL a person opens (``http://127.0.0.1:8080/`` or behind a proxy prefix).
    :param screenshot_dir: where screenshots go (a test's ``tmp_path``).
    """

    def __init__(self, page: Page, base_url: str, screenshot_dir: Path) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/") + "/"
        self.screenshot_dir = screenshot_dir
        self.screenshots: list[Path] = []
        self.failed: list[str] = []  # "<status> <url>" of the current page's failed files and API calls
        self.errors: list[str] = []  # uncaught JavaScript errors
        page.set_default_timeout(WAIT_MS)
        page.on("response", self._record_response)
        page.on("requestfailed", self._record_failure)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _record_response(self, response: Response) -> None:
        # Before login the UI probes /ui/config and gets 401: that is how it knows to show the login page.
        if response.status >= 400 and not (response.status == 401 and response.url.endswith("/ui/config")):
            self.failed.append(f"{response.status} {response.url}")

    def _record_failure(self, request: Request) -> None:
        # Leaving a page aborts its pending requests (net::ERR_ABORTED): the navigation, not a fault.
        if request.failure != "net::ERR_ABORTED" and not request.url.startswith("blob:"):
            self.failed.append(f"failed ({request.failure}) {request.url}")

    # ---- navigation and evidence ------------------------------------------------------------------------
    def open(self, path: str) -> None:
        """Open ``path`` (relative to the base URL) and fail at once if its static files did not load."""
        self.failed.clear()  # the evidence of this page only
        self.page.goto(self.base_url + path.lstrip("/"))
        self.page.wait_for_load_state("load")
        self._fail_on_broken_assets(self.base_url + path.lstrip("/"))

    def _fail_on_broken_assets(self, where: str) -> None:
        broken = [entry for entry in self.failed if "/static/" in entry or entry.startswith("failed ")]
        if broken:
            base_href = self.page.evaluate("document.querySelector('base')?.getAttribute('href') ?? null")
            raise UiCheckError(
                f"{where}: the UI's static files did not load ({', '.join(broken[:5])}); the page's "
                f"<base href> is {base_href!r} while the browser opened {self.base_url}: "
                "AIRFLOW__API__BASE_URL must be the URL the browser uses, path prefix included"
            )

    def expect(self, locator, what: str, *, drawn: bool = False) -> None:
        """Wait until ``locator`` is visible; otherwise raise :class:`UiCheckError` describing ``what``.

        :param drawn: accept an element that is in the page but has no area (a straight SVG edge is a
            zero-height box, which Playwright never calls visible).
        """
        try:
            if drawn:
                locator.first.wait_for(state="attached")
            else:
                locator.filter(visible=True).first.wait_for(state="visible")
        except PlaywrightError as exc:
            self._fail_on_broken_assets(what)
            raise UiCheckError(
                f"{what}: not shown on {self.page.url} within {WAIT_MS / 1000:.0f}s"
                + (f"; failed requests: {', '.join(self.failed[-5:])}" if self.failed else "")
                + (f"; JavaScript errors: {'; '.join(self.errors[-3:])}" if self.errors else "")
                + f" ({exc.message.splitlines()[0]})"
            ) from None

    def screenshot(self, name: str, *, publish: bool = True) -> Path:
        """Save ``<name>.png``; with ``publish``, copy it to ``$AIRBRICKS_UI_SCREENSHOTS_DIR`` when set."""
        self.page.wait_for_load_state("networkidle")
        path = self.screenshot_dir / f"{name}.png"
        self.page.screenshot(path=str(path))
        self.screenshots.append(path)
        keep = os.environ.get(SCREENSHOTS_ENV)
        if keep and publish:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(keep) / path.name)
        return path

    # ---- the checks -------------------------------------------------------------------------------------
    def login(self, username: str, password: str) -> None:
        """Log in through the simple auth manager's form, as a person would, and land on the home page."""
        self.open("")
        self.expect(self.page.get_by_label("Username"), "the login form")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.expect(self.page.get_by_role("link", name="Dags"), "the navigation after login")
        if "/auth/login" in self.page.url:
            raise UiCheckError(f"login as {username} did not leave the login page ({self.page.url})")

    def dag_list(self, dag_ids: list[str]) -> None:
        """The DAG list shows every DAG in ``dag_ids`` as a link to its page."""
        self.open("dags")
        for dag_id in dag_ids:
            self.expect(
                self.page.get_by_role("link", name=dag_id, exact=True), f"DAG {dag_id} in the DAG list"
            )

    def asset_graph(self, asset_id: int, producer_dag: str, consumer_dag: str) -> None:
        """The asset's page draws producer DAG -> asset -> consumer DAG: three nodes, two directed edges."""
        self.open(f"assets/{asset_id}")
        nodes = (f"dag:{producer_dag}", f"asset:{asset_id}", f"dag:{consumer_dag}")
        for node in nodes:
            self.expect(self.page.get_by_test_id(f"rf__node-{node}"), f"the asset graph node {node}")
        for source, target in itertools.pairwise(nodes):
            edge = self.page.get_by_role("group", name=f"Edge from {source} to {target}", exact=True)
            self.expect(edge, f"the asset graph edge {source} -> {target}", drawn=True)

    def successful_run(self, dag_id: str, run_id: str) -> None:
        """The run's page names the run and shows it as Success."""
        self.open(f"dags/{dag_id}/runs/{quote(run_id, safe='')}")
        self.expect(self.page.get_by_text(run_id, exact=True), f"the run {run_id} of {dag_id}")
        self.expect(
            self.page.get_by_text("Success", exact=True), f"the Success state of {dag_id} run {run_id}"
        )

    def task_logs(
        self, dag_id: str, run_id: str, task_id: str, lines: list[str], map_index: int = -1
    ) -> None:
        """The task instance's Logs tab (its default) shows the Success state and every text in ``lines``."""
        mapped = f"/mapped/{map_index}" if map_index >= 0 else ""
        self.open(f"dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}{mapped}")
        self.expect(self.page.get_by_text("Success", exact=True), f"the Success state of {dag_id}.{task_id}")
        for text in lines:
            self.expect(self.page.get_by_text(text), f"the log line {text!r} of {dag_id}.{task_id}")

    def extra_link(self, dag_id: str, run_id: str, task_id: str, name: str, map_index: int = -1) -> str:
        """The task instance's Details tab shows the extra link ``name``; returns where it points."""
        mapped = f"/mapped/{map_index}" if map_index >= 0 else ""
        self.open(f"dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}{mapped}/details")
        link = self.page.get_by_role("link", name=name, exact=True)
        self.expect(link, f"the extra link {name!r} of {dag_id}.{task_id}")
        return link.first.get_attribute("href") or ""
