"""A coordinator's day in the console, in headless Chromium against the real stack and a
real worker: sign in, a case published through the CLI appears without reloading, filters
say what they hide, exports hold the filtered list, an outcome recorded on the case page
flows back into the list, "needs met" against a case's only open need (the welfare check)
closes it and takes it off a list open in another window, an opted-out person disappears
(the hub's tombstone); another recipient's list is 403 in the browser and through the API
and lands in the access log, which the IG officer sees on its page. Every page is
checked with axe-core (no serious or critical violation) and photographed to
docs/screenshots/, at 1280x800 and at tablet width (768 px)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from datetime import UTC, date, datetime

import pytest
from openpyxl import load_workbook

from accord.coordinator import views
from accord.core.pseudonym import person_key
from accord.stack import processes
from accord.synthetic.people import write_csv
from accord.synthetic.records import lothian_people

from .console_harness import assert_accessible, assert_fits_tablet, screenshot

pytestmark = pytest.mark.integration
EDINBURGH = "city-of-edinburgh"
USERS = {
    "alice": ("coordinator", EDINBURGH),
    "fiona": ("coordinator", "fife"),
    "ian": ("ig", None),
    "ada": ("admin", None),
}


def publish(
    settings, tmp_path, rows, name: str, dataset: str = "shielding-list", path=None
) -> None:
    """As a board's data team would: `accord publish` of a CSV."""
    if path is None:
        path = tmp_path / f"{name}.csv"
        write_csv(rows, path)
    done = subprocess.run(
        [sys.executable, "-m", "accord", "publish", "--as", "nhs-lothian"]
        + ["-d", dataset, str(path)],
        env=processes.process_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def row_of(page, reference: str):
    return page.locator(f"#case-{reference}")


def test_a_coordinators_day_in_the_browser(settings, tmp_path, console_app, browser):
    people = [r for r in lothian_people(12) if r["council_area"] == "City of Edinburgh"][:3]
    for row in people:
        row.update(effective_date=date.today().isoformat(), address_line2="Flat 2/1")
        row.update(town="Edinburgh")
    secret = settings.require_pseudonym_key()
    first, second, third = (
        views.case_reference(person_key(secret, r["chi_number"])) for r in people
    )

    pool = processes.Workers(settings, tmp_path, loglevel="info")
    try:
        pool.start()
        app = console_app(USERS)

        page = app.sign_in(browser, "alice")
        assert page.url.endswith(f"/lists/{EDINBURGH}")
        page.evaluate("() => { window.notReloaded = true }")

        # A new case published through the CLI appears without reloading the page.
        started = time.monotonic()
        publish(settings, tmp_path, people, "lothian")
        row_of(page, first).wait_for(timeout=120_000)
        row_of(page, second).wait_for(timeout=30_000)
        row_of(page, third).wait_for(timeout=30_000)
        appeared_s = time.monotonic() - started
        assert page.evaluate("() => window.notReloaded === true"), "the page was reloaded"
        text = row_of(page, first).inner_text()
        assert people[0]["family_name"] in text and "Flat 2/1" in text and "Edinburgh" in text
        assert "welfare check" in text
        print(f"published to shown in the open page: {appeared_s:.1f}s", file=sys.stderr)
        assert_accessible(page, "coordinator: support list")
        screenshot(page, "coordinator-list")

        # Filters, by keyboard-operable controls, and what they hide.
        page.get_by_label("high", exact=True).check()
        page.get_by_role("button", name="Apply filters").click()
        page.wait_for_url("**priority=high**")
        assert "0 of 3 open cases shown" in page.locator("#list-count").inner_text()
        assert "3 hidden by the filters" in page.locator("#list-count").inner_text()
        assert_accessible(page, "coordinator: support list, filtered")
        screenshot(page, "coordinator-list-filtered")
        page.get_by_role("link", name="Clear filters").click()
        page.get_by_label("welfare check", exact=True).check()
        page.get_by_role("button", name="Apply filters").click()
        page.wait_for_url("**need=welfare_check**")
        assert "3 of 3 open cases shown" in page.locator("#list-count").inner_text()

        # Exports of the filtered list: every released field, the references.
        with page.expect_download() as download:
            page.get_by_role("link", name="Export CSV").click()
        rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
        assert {r["reference"] for r in rows} == {first, second, third}
        assert {r["address_line2"] for r in rows} == {"Flat 2/1"}
        with page.expect_download() as download:
            page.get_by_role("link", name="Export Excel (.xlsx)").click()
        assert download.value.suggested_filename.endswith(".xlsx")
        sheet = load_workbook(io.BytesIO(download.value.path().read_bytes())).active
        values = [[c.value for c in row] for row in sheet.iter_rows()]
        assert len(values) == 4 and values[0][0] == "reference"

        # Tablet width: the same list, usable.
        assert_fits_tablet(page, "coordinator: support list", shot="coordinator-list-tablet")

        # The case page; an outcome recorded there comes back into the list.
        page.get_by_role("link", name=first).click()
        page.wait_for_url(f"**/cases/{first}")
        assert "DSA-" in page.content() and "Policy revision" in page.content()
        assert_accessible(page, "coordinator: case")
        screenshot(page, "coordinator-case")
        page.get_by_role("button", name="Record outcome").click()  # nothing chosen
        assert "There is a problem" in page.content()
        assert_accessible(page, "coordinator: case, outcome form with errors")
        page.get_by_label("welfare check").check()
        page.get_by_label("What happened?").select_option("NO_ANSWER")
        page.get_by_role("button", name="Record outcome").click()
        page.get_by_text("The outcome was sent to the hub").wait_for()
        screenshot(page, "coordinator-outcome-recorded")
        page.get_by_role("link", name="Back to the support list").click()
        page.wait_for_url(f"**/lists/{EDINBURGH}")
        page.evaluate("() => { window.notReloaded = true }")
        page.wait_for_function(
            f"() => (document.querySelector('#case-{first}') || {{}}).innerText"
            "?.includes('no answer')",
            timeout=90_000,
        )

        # "Needs met" against the second case's only open need (the welfare check),
        # recorded on its case page, closes it: the hub's tombstone takes the row off a
        # list open in another window, live.
        watcher = page.context.new_page()
        watcher.goto(app.url(f"/lists/{EDINBURGH}"))
        row_of(watcher, second).wait_for()
        watcher.evaluate("() => { window.notReloaded = true }")
        page.goto(app.url(f"/lists/{EDINBURGH}/cases/{second}"))
        assert page.locator("#need").get_attribute("value") == "WELFARE_CHECK"
        assert page.locator("input[name=need]").count() == 1  # the only open need
        page.get_by_label("welfare check").check()
        page.get_by_label("What happened?").select_option("NEEDS_MET")
        page.get_by_role("button", name="Record outcome").click()
        page.get_by_text("The outcome was sent to the hub").wait_for()
        started = time.monotonic()
        # Straight back to the list, as a coordinator would: the case closes about when
        # this page is rendered, and a tombstone landing between its render and its
        # event stream's start must still take the row off (it is sent at once).
        page.get_by_role("link", name="Back to the support list").click()
        page.wait_for_url(f"**/lists/{EDINBURGH}")
        page.evaluate("() => { window.notReloaded = true }")
        row_of(watcher, second).wait_for(state="detached", timeout=90_000)
        print(f"needs met to off the open list: {time.monotonic() - started:.1f}s", file=sys.stderr)
        assert watcher.evaluate("() => window.notReloaded === true"), "the list was reloaded"
        assert row_of(watcher, first).is_visible() and row_of(watcher, third).is_visible()
        watcher.close()
        row_of(page, second).wait_for(state="detached", timeout=15_000)
        assert page.evaluate("() => window.notReloaded === true"), "the list was reloaded"

        # The third person opts out (the board publishes it): the hub's tombstone
        # removes them from the open page.
        page.evaluate("() => { window.notReloaded = true }")
        opt_out = tmp_path / "opt-out.csv"
        opt_out.write_text(
            "occurred_at,chi_number,scope,change\n"
            f"{datetime.now(UTC).isoformat(timespec='seconds')},{people[2]['chi_number']},"
            "ALL_SHARING,OPT_OUT\n"
        )
        publish(settings, tmp_path, None, "opt-out", dataset="consent-change", path=opt_out)
        row_of(page, third).wait_for(state="detached", timeout=90_000)
        assert page.evaluate("() => window.notReloaded === true")
        assert row_of(page, first).is_visible()

        # Keyboard: the first Tab reaches the skip link, which is visible when focused.
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.className").startswith("govuk-skip-link")

        # Another recipient's list, by URL and by API call: 403, recorded.
        response = page.goto(app.url("/lists/fife"))
        assert response.status == 403 and "You cannot see this page" in page.content()
        assert_accessible(page, "error: another recipient's list (403)")
        screenshot(page, "forbidden")
        api = page.request.get(app.url("/lists/fife/export.csv"))
        assert api.status == 403
        denied = [e for e in app.access_entries() if e["kind"] == "denied"]
        assert {(e["user"], e["path"], e["status"]) for e in denied} >= {
            ("alice", "/lists/fife", 403),
            ("alice", "/lists/fife/export.csv", 403),
        }
        # The IG officer sees both refused attempts on the access-log page.
        ig = app.sign_in(browser, "ian")
        ig.goto(app.url("/ig/access-log?kind=denied"))
        shown = ig.evaluate(
            """() => [...document.querySelectorAll('tbody tr')]
                .map(r => [...r.cells].map(c => c.innerText.trim()))
                .filter(cells => cells.length === 5)"""
        )
        refused = {(c[2], c[3]) for c in shown if c[1] == "refused" and "asked for fife" in c[4]}
        assert refused >= {
            (f"alice\ncoordinator, {EDINBURGH}", "GET /lists/fife"),
            (f"alice\ncoordinator, {EDINBURGH}", "GET /lists/fife/export.csv"),
        }, shown
        assert_accessible(ig, "ig: access log, a coordinator's refused list")
        viewed = [e for e in app.access_entries() if e["kind"] == "viewed"]
        assert viewed and all("Family" not in str(e) for e in viewed)
        keys = {k for e in viewed for k in e["keys"]}
        assert person_key(secret, people[0]["chi_number"]) in keys

        # A Fife coordinator sees only Fife's (empty) list, never Edinburgh's people.
        fife = app.sign_in(browser, "fiona")
        assert fife.url.endswith("/lists/fife")
        assert people[0]["family_name"] not in fife.content()

        # The sign-in page (with an error) and the administrator's users page.
        context = browser.new_context(ignore_https_errors=True, bypass_csp=True)
        app.contexts.append(context)
        anonymous = context.new_page()
        anonymous.goto(app.url("/sign-in"))
        assert_accessible(anonymous, "sign-in")
        screenshot(anonymous, "sign-in")
        anonymous.get_by_label("User name").fill("alice")
        anonymous.get_by_label("Password").fill("not the password")
        anonymous.get_by_role("button", name="Sign in").click()
        assert "The user name or password is not right" in anonymous.content()
        assert_accessible(anonymous, "sign-in with an error")
        admin = app.sign_in(browser, "ada")
        admin.goto(app.url("/admin/users"))
        assert_accessible(admin, "administrator: users")
        screenshot(admin, "admin-users")
    finally:
        pool.stop()
        for name, tail in pool.tails():
            print(f"--- {name} (tail)\n{tail}", file=sys.stderr)
