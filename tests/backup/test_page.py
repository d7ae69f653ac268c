"""The backup page in a real headless Chromium: a job added, run with its progress shown,
its files browsed and one restored, edited and deleted; at desktop and phone size."""

from __future__ import annotations

import shutil
import sysconfig
import tomllib
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.backup.conftest import Home
from tests.core.test_pages import DESKTOP, log_in, shoot, shots_dir
from tests.support import add_user, running

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


def stdlib_tree(folder: Path) -> Path:
    """A real source tree: the email package of this Python's standard library (~1.5 MiB)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    shutil.copytree(stdlib / "email", folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_a_job_is_added_run_browsed_restored_and_deleted(
    home: Home, browser: Browser, tmp_path: Path
) -> None:
    home.write([])
    tree = stdlib_tree(tmp_path / "mail-code")
    add_user(home.data, "root", "root password", admin=True)
    add_user(home.data, "bob", "bob password", "backup")
    shots = shots_dir(tmp_path)
    with running(["--config", home.config, "serve", "--port", "0"], data_dir=home.data) as srv:
        page = browser.new_page(viewport=DESKTOP)
        page.on("dialog", lambda dialog: dialog.accept())
        log_in(page, srv, "root", "root password")
        page.goto(srv.url + "/backup/")
        page.wait_for_selector("#no-jobs:has-text('No backup jobs yet')")
        before = home.config.read_bytes()

        page.click("#add-job")
        page.fill("#f-name", "<img src=x onerror=alert(1)>")
        page.fill("#f-source", str(tree))
        page.click("#save-job")
        page.wait_for_selector("#form-error:has-text('a job name is')")
        page.fill("#f-name", "mail code")
        page.fill("#f-source", str(tmp_path / "missing"))
        page.click("#save-job")
        page.wait_for_selector("#form-error:has-text('not an existing directory')")
        assert home.config.read_bytes() == before
        page.fill("#f-source", str(tree))
        page.select_option("#f-method", "snapshot")
        page.select_option("#f-when", "every")
        page.fill("#f-every", "6")
        page.select_option("#f-units", "Hours")
        page.fill("#f-excludes", "*.tmp\n")
        page.fill("#f-bwlimit", "300")  # KiB/s: slow enough to watch the progress
        page.fill("#f-keep_daily", "7")
        shoot(page, "backup-edit", shots)
        page.click("#save-job")
        row = page.locator('#jobs tr[data-job="mail code"]')
        row.wait_for()
        assert "every 6 Hours" in row.inner_text()
        saved = tomllib.loads(home.config.read_text())["backup"]["jobs"]
        assert saved[0]["name"] == "mail code"
        assert saved[0]["keep_daily"] == 7

        row.locator("button.run").click()
        progress = row.locator(".progress")
        progress.locator("span:has-text('running:')").wait_for(timeout=20_000)
        page.wait_for_function(
            """() => {
                const bar = document.querySelector('#jobs tr[data-job="mail code"] progress');
                return bar && bar.value > 0 && bar.value < 100;
            }""",
            timeout=30_000,
        )
        assert row.locator("button.run").is_disabled()
        shoot(page, "backup-running", shots)
        row.locator("td.result-ok").wait_for(timeout=60_000)
        assert progress.is_hidden()
        assert "mail code: ok" in page.locator("#status").inner_text()

        row.locator("button.runs").click()
        page.wait_for_selector("#history tbody tr td.result-ok")
        assert "api:" in page.locator("#history tbody tr").first.inner_text()

        row.locator("button.files").click()
        page.wait_for_selector('#files tr[data-name="mime"]')
        page.click('#files tr[data-name="mime"] button.open')
        page.wait_for_selector('#files tr[data-name="text.py"]')
        assert "mime" in page.locator("#crumbs").inner_text()
        page.click('#files tr[data-name="text.py"] button.restore')
        out = tmp_path / "restored"
        page.fill("#restore-dest", str(out))
        page.click("#restore-go")
        page.wait_for_selector("#restore-message:has-text('restored to')")
        assert (out / "text.py").read_bytes() == (tree / "mime" / "text.py").read_bytes()
        # the same again answers on the page, and writes nothing
        page.click("#restore-go")
        page.wait_for_selector("#restore-message.error:has-text('exists')")
        # into the source only when asked
        page.fill("#restore-dest", str(tree / "mime"))
        page.check("#restore-overwrite")
        page.click("#restore-go")
        page.wait_for_selector("#restore-message.error:has-text('source')")
        shoot(page, "backup", shots)

        viewer = browser.new_page(viewport=DESKTOP)
        log_in(viewer, srv, "bob", "bob password")
        viewer.goto(srv.url + "/backup/")
        viewer.locator('#jobs tr[data-job="mail code"]').wait_for()
        assert viewer.locator("#add-job").count() == 0
        assert viewer.locator("#jobs button.edit, #jobs button.delete").count() == 0

        row.locator("button.edit").click()
        assert page.input_value("#f-name") == "mail code"
        assert page.input_value("#f-every") == "6"
        page.select_option("#f-when", "cron")
        page.fill("#f-cron", "0 3 * * *")
        page.click("#save-job")
        page.wait_for_selector('#jobs tr[data-job="mail code"]:has-text("cron 0 3 * * *")')
        row.locator("button.delete").click()
        page.wait_for_selector("#status:has-text('deleted job mail code')")
        assert page.locator("#jobs tbody tr").count() == 0
        assert tomllib.loads(home.config.read_text())["backup"]["jobs"] == []
