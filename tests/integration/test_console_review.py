"""The review queue in the console, in headless Chromium (the system's, driven by
Playwright's Python API) against the real stack: Kafka, the registry, OPA, a real
`accord worker` and a real `accord console`. Two uncertain pairs are queued as in
test_match_review (two listed people, then two requests without CHI, with an initial and
no postcode); an IG officer signs in, sees the queue (no names), opens each pair (both
records side by side, the evidence and score; access-logged with both keys), is refused a
reason that holds a date (a form error, nothing sent), confirms one and rejects the other.
The council coordinator's open list then loses the confirmed provisional person's case and
keeps the rejected one's. Then the merge is split from the Merges page (a reason holding a
number refused first): both people are back on their own cases on the council's list, and
the audit's withdrawal names the split, its decision and reason. axe-core on every page
(no serious or critical violation), the review pages at 1280x800 and at tablet width
(768 px, where no page is wider than the screen); screenshots to
docs/screenshots/ig-review-*.png (the queue at 768 px too)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from accord.coordinator import views
from accord.core.credentials import REVIEWER
from accord.core.pseudonym import person_key
from accord.core.topics import SHIELDING_LIST, SUPPORT_REQUEST
from accord.matching import review as engine
from accord.stack import processes
from accord.synthetic.records import START, lothian_people, shielding_entry, support_request

from .conftest import audit_decisions
from .console_harness import assert_accessible, assert_fits_tablet, screenshot
from .workload import send_native

pytestmark = pytest.mark.integration
EDINBURGH = "city-of-edinburgh"
USERS = {"ian": ("ig", None), "alice": ("coordinator", EDINBURGH)}


def queue_two_pairs(settings, serde, worker) -> tuple[list[dict], list[str]]:
    rows = [r for r in lothian_people(30) if r["council_area"] == "City of Edinburgh"][:2]
    send_native(
        settings,
        serde,
        SHIELDING_LIST,
        "ShieldingListEntry",
        [("nhs-lothian", shielding_entry(row)) for row in rows],
    )
    worker()
    processes.wait_until_caught_up(settings)  # listed first: a later request is compared
    later = START + timedelta(days=1)
    requests = [
        support_request(
            row,
            f"WEB-{i}",
            at=later,
            with_chi=False,
            needs=["FINANCIAL"],
            given_name=row["given_name"][0],
            postcode=None,
        )
        for i, row in enumerate(rows)
    ]
    send_native(
        settings,
        serde,
        SUPPORT_REQUEST,
        "SupportRequest",
        [(r["source_org"], r) for r in requests],
    )
    processes.wait_until_caught_up(settings)
    secret = settings.require_pseudonym_key()
    return rows, [person_key(secret, row["chi_number"]) for row in rows]


def wait_rows(page, present: list[str], absent: list[str], timeout_s: float = 45) -> None:
    """Until the open list shows every `present` case and none of `absent` (live, no reload)."""
    deadline = time.monotonic() + timeout_s
    while True:
        shown = {ref: page.locator(f"#case-{ref}").count() > 0 for ref in present + absent}
        if all(shown[r] for r in present) and not any(shown[r] for r in absent):
            return
        assert time.monotonic() < deadline, f"the list did not settle: {shown}"
        time.sleep(0.5)


def test_confirm_and_reject_from_the_review_page(
    settings, serde, worker, tmp_path, console_app, browser
):
    rows, listed = queue_two_pairs(settings, serde, worker)
    reviewer = settings.model_copy(update={"principal": REVIEWER})
    queue = {item.candidate_key: item for item in engine.pending(reviewer)}
    assert set(queue) == set(listed)
    confirmed, rejected = queue[listed[0]], queue[listed[1]]
    ref = views.case_reference

    app = console_app(USERS)
    # The council's coordinator has the list open: both provisional cases are on it.
    council = app.sign_in(browser, "alice")
    assert council.url.endswith(f"/lists/{EDINBURGH}")
    wait_rows(council, [ref(confirmed.review_id), ref(rejected.review_id)], [])
    council.evaluate("() => { window.notReloaded = true }")

    page = app.sign_in(browser, "ian")
    page.goto(app.url("/ig/review"))
    table = page.locator("#review-queue")
    assert "2 pairs waiting for review" in table.inner_text()
    text = page.content()
    for row in rows:  # the queue shows no personal data
        assert row["family_name"] not in text and row["chi_number"] not in text
    assert_accessible(page, "ig: review queue")
    screenshot(page, "ig-review-queue")
    assert_fits_tablet(page, "ig: review queue", shot="ig-review-queue-tablet")

    # The first pair: both records side by side with the evidence; a reason holding a
    # date is refused as a form error and nothing is sent.
    page.locator(f"#review-{confirmed.short_id} a").click()
    page.wait_for_load_state()
    pair = page.locator("#side-by-side").inner_text()
    assert rows[0]["family_name"] in pair and rows[0]["given_name"] in pair
    assert "%" in page.locator("#probability").inner_text()
    assert_accessible(page, "ig: review pair")
    screenshot(page, "ig-review-pair")
    assert_fits_tablet(page, "ig: review pair")
    page.get_by_label("Reject: two different people").check()
    page.get_by_label("Why (required to reject)").fill("born on 01/02/1950, different")
    page.get_by_role("button", name="Send decision").click()
    page.wait_for_load_state()
    assert "There is a problem" in page.content() and "seems to hold a date" in page.content()
    assert_accessible(page, "ig: review reason refused")
    screenshot(page, "ig-review-reason-refused")
    assert_fits_tablet(page, "ig: review reason refused")
    assert len(engine.pending(reviewer)) == 2  # nothing decided
    page.get_by_label("Confirm: the same person").check()
    page.get_by_role("button", name="Send decision").click()
    page.wait_for_load_state()
    assert "confirmation was sent" in page.content()

    # The second pair: rejected with a reason.
    page.locator(f"#review-{rejected.short_id} a").click()
    page.wait_for_load_state()
    page.get_by_label("Reject: two different people").check()
    page.get_by_label("Why (required to reject)").fill("different people: twins")
    page.get_by_role("button", name="Send decision").click()
    page.wait_for_load_state()
    assert "rejection was sent" in page.content()
    assert page.locator("#review-empty").count() == 1
    assert_accessible(page, "ig: review queue decided")
    screenshot(page, "ig-review-decided")
    assert_fits_tablet(page, "ig: review queue decided")

    # The decisions flow back into matching: the confirmed provisional case leaves the
    # council's open list (merged into the listed person), the rejected one stays.
    wait_rows(
        council,
        [ref(listed[0]), ref(listed[1]), ref(rejected.review_id)],
        [ref(confirmed.review_id)],
        timeout_s=60,
    )
    merged = council.locator(f"#case-{ref(listed[0])}")
    deadline = time.monotonic() + 30
    while "financial" not in merged.inner_text().lower():  # the request joined the person
        assert time.monotonic() < deadline, merged.inner_text()
        time.sleep(0.5)
    assert "financial" not in council.locator(f"#case-{ref(listed[1])}").inner_text().lower()
    assert council.evaluate("() => window.notReloaded") is True
    screenshot(council, "ig-review-effect-on-list")
    # (keyed by person, over several partitions: no order between the two)
    published = {d["action"]: d for d in engine.decisions(reviewer)}
    assert sorted(published) == ["CONFIRM", "REJECT"]
    assert {(d["reviewer"], d["reviewer_ref"]) for d in published.values()} == {(REVIEWER, "ian")}
    assert published["CONFIRM"]["review_id"] == confirmed.review_id
    assert published["REJECT"]["reason"] == "different people: twins"

    # Every view of a pair is in the access log with both keys, never a name.
    viewed = [e for e in app.access_entries() if e.get("what") == "review pair"]
    assert {k for e in viewed for k in e["keys"]} >= {
        confirmed.review_id,
        confirmed.candidate_key,
        rejected.review_id,
        rejected.candidate_key,
    }
    assert all(rows[0]["family_name"] not in str(e) for e in app.access_entries())

    # The merge was wrong after all: split it from the Merges page.
    page.goto(app.url("/ig/merges"))
    confirm_id = published["CONFIRM"]["decision_id"]
    assert "1 merge confirmed in review" in page.locator("#merges").inner_text()
    assert page.locator(f"#merge-{published['REJECT']['decision_id'][:8]}").count() == 0
    assert rows[0]["family_name"] not in page.content()
    assert_accessible(page, "ig: merges")
    page.locator(f"#merge-{confirm_id[:8]} a").click()
    page.wait_for_load_state()
    assert ref(confirmed.review_id) in page.locator("#merge-summary").inner_text()
    page.get_by_label("Why was the merge wrong?").fill("not him: CHI 0101501234")
    page.get_by_role("button", name="Split the merge").click()
    page.wait_for_load_state()
    assert page.locator(".govuk-error-summary").count() == 1
    assert "seems to hold a number" in page.content() and "0101501234" not in page.content()
    assert_accessible(page, "ig: merge split refused")
    assert all(d["action"] != "SPLIT" for d in engine.decisions(reviewer))  # nothing sent
    page.get_by_label("Why was the merge wrong?").fill("wrong merge: a relative")
    assert_accessible(page, "ig: merge split")
    screenshot(page, "ig-review-split")
    page.get_by_role("button", name="Split the merge").click()
    page.wait_for_load_state()
    assert "The split was sent" in page.content()
    assert page.locator("#merges-empty").count() == 1
    assert_accessible(page, "ig: merges split")
    [split] = [d for d in engine.decisions(reviewer) if d["action"] == "SPLIT"]
    assert (split["reviewer"], split["reviewer_ref"]) == (REVIEWER, "ian")
    assert {split["person_key"], split["other_person_key"]} == {confirmed.review_id, listed[0]}
    # Split already: the merge's page is gone (404), nothing more can be sent.
    assert page.goto(app.url(f"/ig/merges/{confirm_id}")).status == 404

    # Both people are back on their own cases on the council's list, live: the provisional
    # person's case holds the request again, the listed person's does not.
    wait_rows(
        council,
        [ref(listed[0]), ref(confirmed.review_id), ref(listed[1]), ref(rejected.review_id)],
        [],
        timeout_s=60,
    )
    own = council.locator(f"#case-{ref(confirmed.review_id)}")
    deadline = time.monotonic() + 60
    while "financial" not in own.inner_text().lower() or "financial" in merged.inner_text().lower():
        assert time.monotonic() < deadline, (own.inner_text(), merged.inner_text())
        time.sleep(0.5)
    assert council.evaluate("() => window.notReloaded") is True
    # The audit names the split: what was shared under the merge was withdrawn, and why.
    processes.wait_until_caught_up(settings)
    withdrawn = [
        " ".join(d["reasons"])
        for d in audit_decisions(settings, serde)
        if d["subject_key"] == listed[0] and d["outcome"] == "WITHDRAW"
    ]
    assert any(
        "split from person" in r and split["decision_id"] in r and "wrong merge: a relative" in r
        for r in withdrawn
    ), withdrawn
    # The views of the merge and the split are in the access log with both keys only.
    logged = [e for e in app.access_entries() if e.get("what") in ("merge", "merge split")]
    assert {e["what"] for e in logged} == {"merge", "merge split"}
    assert all(set(e["keys"]) == {confirmed.review_id, listed[0]} for e in logged)
    assert all(rows[0]["family_name"] not in str(e) for e in app.access_entries())
