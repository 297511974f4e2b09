"""The Airflow 3.3 web UI driven as a user drives it, in headless Chromium (Playwright with Debian's
/usr/bin/chromium; never a downloaded browser): log in, open a DAG's trigger form, fill the fields a
user changes, press Trigger, take screenshots.

Selectors are the form's own: each param's field is named ``element_<param>``, enums are
react-select comboboxes, the submit button is ``data-testid=trigger-dag-submit``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="Debian's chromium is not installed (.ci/run installs it)")
# The machine runs as root and has no network: without these Chromium keeps dialling out.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 800}
# Not METGAN_*: tests/conftest.py clears those so that a developer's settings never leak in.
SCREENSHOTS_ENV = "E2E_SCREENSHOTS"


@dataclass
class Screenshots:
    """Every screenshot goes to the test's own folder, and also to $E2E_SCREENSHOTS when set
    (``E2E_SCREENSHOTS=docs/screenshots`` refreshes the README's pictures)."""

    folder: Path
    publish_to: Path | None = None
    taken: list[Path] = field(default_factory=list)

    @classmethod
    def from_env(cls, folder: Path) -> Screenshots:
        published = os.environ.get(SCREENSHOTS_ENV)
        return cls(folder=folder, publish_to=Path(published).resolve() if published else None)

    def take(self, page, name: str, *, full_page: bool = False) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        self.taken.append(path)
        if self.publish_to is not None:
            self.publish_to.mkdir(parents=True, exist_ok=True)
            publish_small(path, self.publish_to / path.name)
        return path


def publish_small(source: Path, destination: Path) -> None:
    """A committed screenshot as a 256-colour PNG: a UI page loses nothing visible and shrinks
    several times over."""
    from PIL import Image

    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=256).save(destination, optimize=True)


class AirflowUI:
    """One logged-in browser page on a deployment."""

    def __init__(self, page, base_url: str, screenshots: Screenshots):
        self.page = page
        self.url = base_url
        self.screenshots = screenshots

    def log_in(self, username: str, password: str) -> None:
        self.page.goto(f"{self.url}/")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", password)
        self.page.click("button:has-text('Sign in')")
        self.page.wait_for_url(f"{self.url}/", timeout=30000)

    def open_trigger_form(self, dag_id: str):
        """The DAG's page, then its Trigger button: returns the form's dialog once its params show."""
        self.page.goto(f"{self.url}/dags/{dag_id}")
        self.page.get_by_role("button", name="Trigger").first.click()
        dialog = self.page.get_by_role("dialog")
        dialog.get_by_text("Run Parameters").wait_for(timeout=30000)
        # The params load after the dialog: wait for the first field of the DAG's own.
        dialog.locator("[name^=element_]").first.wait_for(state="attached", timeout=30000)
        return dialog

    @staticmethod
    def submit_button(dialog):
        return dialog.get_by_test_id("trigger-dag-submit")

    @staticmethod
    def choose(dialog, param: str, value: str) -> None:
        """Pick ``value`` in the enum ``param``'s select (a react-select combobox)."""
        field_root = dialog.locator(f"div:has(> input[type=hidden][name=element_{param}])")
        field_root.get_by_role("combobox").click()
        field_root.get_by_role("option", name=value, exact=True).click()
        hidden = dialog.locator(f"input[type=hidden][name=element_{param}]")
        assert hidden.input_value() == value, f"{param}: chose {value!r}, form holds {hidden.input_value()!r}"

    @staticmethod
    def fill(dialog, param: str, value: str) -> None:
        dialog.locator(f"[name=element_{param}]").fill(value)

    @staticmethod
    def open_section(dialog, section: str) -> None:
        dialog.get_by_text(section, exact=True).click()

    def trigger(self, dialog) -> str:
        """Press the form's Trigger; returns the new run's id, read from the page it opens."""
        button = self.submit_button(dialog)
        assert button.is_enabled(), "the Trigger button is disabled: " + self.form_errors(dialog)
        button.click()
        self.page.wait_for_url("**/runs/**", timeout=30000)
        return unquote(self.page.url.rsplit("/runs/", 1)[1].split("/")[0])

    @staticmethod
    def form_errors(dialog) -> str:
        return " | ".join(t.strip() for t in dialog.locator("[data-part=error-text]").all_inner_texts()) or "none shown"

    def run_page(self, dag_id: str, run_id: str, suffix: str = "") -> str:
        return f"{self.url}/dags/{dag_id}/runs/{quote(run_id)}{suffix}"
