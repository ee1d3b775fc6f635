"""The console's review-queue pages through the real FastAPI application, with the engine's
two Kafka calls (`pending`, `publish`) replaced by an in-memory queue: the list holds no
personal data, a pair's page shows both records and is access-logged, a reject needs a
reason, a reason that looks like personal data is a form error and nothing is published,
a forged CSRF token changes nothing, and only IG officers reach the pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from accord.console import review as page
from accord.console.app import create_app
from accord.console.users import UserStore
from accord.coordinator.views import case_reference
from accord.core.credentials import held_credential
from accord.core.errors import InfrastructureError
from accord.core.settings import Settings
from accord.matching import review as engine

from .test_console_app import FAST, PASSWORD, csrf, sign_in

QUEUED = "1a" * 32
LISTED = "2b" * 32


def queued_review() -> engine.Review:
    return engine.Review.from_item(
        QUEUED,
        {
            "provisional_key": QUEUED,
            "candidate_key": LISTED,
            "block_key": "blk",
            "dataset": "support-request",
            "source_org": "city-of-edinburgh",
            "probability": 0.62,
            "weight": 0.7,
            "evidence": [["given_name", "initial", 1.5], ["family_name", "exact", 8.2]],
            "queued_at": (datetime.now(UTC) - timedelta(hours=3)).isoformat(),
            "records": {
                "queued": {"given_name": "M", "family_name": "Campbell"},
                "candidate": {"given_name": "Morag", "family_name": "Campbell"},
            },
        },
    )


@pytest.fixture
def console(tmp_path, monkeypatch):
    settings = Settings(state_dir=tmp_path, console_tls=False)
    users = UserStore(settings.console_users_path, FAST)
    users.add("ian", "ig", PASSWORD)
    users.add("alice", "coordinator", PASSWORD, org="city-of-edinburgh")
    queue = [queued_review()]
    published: list[dict] = []
    monkeypatch.setattr(engine, "pending", lambda s: list(queue))

    def publish(s, record):
        published.append(record)  # the queue keeps the pair until the worker applies it

    monkeypatch.setattr(engine, "publish", publish)
    monkeypatch.setattr(engine, "connection", lambda s: type("C", (), {"principal": s.principal}))
    app = create_app(settings, users=users, lists=None)
    return app, published, queue


def test_age_in_plain_words():
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert page.age(None, now) == "not known"
    assert page.age("2026-12-02T11:59:30Z", now) == "less than a minute"
    assert page.age("2026-12-02T11:00:00+00:00", now) == "1 hour"
    assert page.age("2026-11-29T12:00:00", now) == "3 days"
    assert page.age("yesterday", now) == "not known"
    assert page.day("2020-03-12T10:00:00Z") == "12 March 2020"
    assert [page.percent(p) for p in (0.62, 0.9996, 1.0, 0.0, 0.0004)] == [
        "62.0%",
        "over 99.9%",
        "100%",
        "0.0%",
        "under 0.1%",
    ]
    assert page.day(None) == page.day("soon") == "not known"


def test_the_queue_lists_no_personal_data_and_a_pair_is_access_logged(console):
    app, _, _ = console
    client = TestClient(app)
    sign_in(client, "ian")
    listing = client.get("/ig/review")
    assert listing.status_code == 200
    assert QUEUED[:12] in listing.text and "62.0%" in listing.text
    assert "(3 hours ago)" in listing.text
    assert "Campbell" not in listing.text and "Morag" not in listing.text
    assert 'href="/ig/review"' in listing.text  # in the IG navigation
    assert client.get("/review").url.path == "/ig/review"
    assert not app.state.access_log.entries("viewed")

    pair = client.get(f"/ig/review/{QUEUED}")
    assert pair.status_code == 200
    assert "Morag" in pair.text and "initial (+1.5)" in pair.text and "62.0%" in pair.text
    [entry] = app.state.access_log.entries("viewed")
    assert entry["user"] == "ian" and set(entry["keys"]) == {QUEUED, LISTED}
    assert "Morag" not in str(entry)
    assert client.get(f"/ig/review/{'3c' * 32}").status_code == 404


def test_reject_needs_a_reason_free_of_personal_data(console):
    app, published, queue = console
    client = TestClient(app)
    sign_in(client, "ian")
    token = csrf(client.get(f"/ig/review/{QUEUED}").text)
    url = f"/ig/review/{QUEUED}/decision"
    for data, message in (
        ({"action": "REJECT", "reason": ""}, "Say why the records are two different people"),
        ({"action": "REJECT", "reason": "born 01/02/1950"}, "seems to hold a date"),
        ({"action": "REJECT", "reason": "CHI 0101501234 differs"}, "seems to hold a number"),
        ({"action": ""}, "Select whether the records are the same person"),
    ):
        response = client.post(url, data={**data, "csrf_token": token})
        assert response.status_code == 400 and message in response.text
        assert "There is a problem" in response.text
        assert "0101501234" not in response.text  # a refused reason is not echoed
    # A forged token: 403 and nothing published.
    response = client.post(url, data={"action": "CONFIRM", "csrf_token": "forged"})
    assert response.status_code == 403
    assert published == []

    response = client.post(
        url,
        data={"action": "REJECT", "reason": "two people: twins", "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"].startswith("/ig/review?")
    [record] = published
    assert record["action"] == "REJECT" and record["reason"] == "two people: twins"
    assert (record["person_key"], record["other_person_key"]) == (QUEUED, LISTED)
    assert record["reviewer"] == "accord-reviewer" and record["reviewer_ref"] == "ian"
    done = client.get(response.headers["location"])
    assert "rejection was sent" in done.text and "No pair is waiting" in done.text
    # Decided already (the hub applying it, still on its queue): hidden, the pair's page
    # and a second decision are 404, nothing more is sent.
    assert client.get(f"/ig/review/{QUEUED}").status_code == 404
    assert client.post(url, data={"action": "CONFIRM", "csrf_token": token}).status_code == 404
    assert len(published) == 1
    # Once the hub has taken the pair off its queue, the console forgets it.
    queue.clear()
    client.get("/ig/review")
    assert app.state.review_decided == {}


def test_only_ig_officers_review(console):
    app, _, _ = console
    client = TestClient(app)
    sign_in(client, "alice")
    assert client.get("/ig/review").status_code == 403
    assert client.get(f"/ig/review/{QUEUED}").status_code == 403
    assert 'href="/ig/review"' not in client.get("/cases").text
    assert [e["path"] for e in app.state.access_log.entries("denied")] == [
        f"/ig/review/{QUEUED}",
        "/ig/review",
    ]  # newest first


CONFIRMED = "0c0f1a2b-0000-4000-8000-00000000c0f1"


@pytest.fixture
def merged(console, monkeypatch):
    """The console with one merge confirmed in review (by "ian" earlier), read back from an
    in-memory decisions topic that every published decision joins, as the real one does."""
    app, published, _ = console
    past = [
        engine.decision(
            "CONFIRM",
            QUEUED,
            LISTED,
            "accord-reviewer",
            reviewer_ref="ian",
            reason="same person: initial only",
            now=datetime.now(UTC) - timedelta(hours=1),
            decision_id=CONFIRMED,
        )
    ]
    down: list[str] = []

    def decisions(s):
        if "read" in down:
            raise InfrastructureError("Kafka unavailable while reading hub.match.decisions")
        return list(past)

    def publish(s, record):
        if "publish" in down:
            raise InfrastructureError("Kafka unavailable while publishing hub.match.decisions")
        published.append(record)
        past.append(record)

    monkeypatch.setattr(engine, "decisions", decisions)
    monkeypatch.setattr(engine, "publish", publish)
    return app, published, down


def test_the_merges_list_no_personal_data_and_a_merge_is_access_logged(merged):
    app, _, _ = merged
    client = TestClient(app)
    sign_in(client, "ian")
    listing = client.get("/ig/merges")
    assert listing.status_code == 200
    assert CONFIRMED[:8] in listing.text and "1 merge confirmed in review" in listing.text
    assert case_reference(QUEUED) in listing.text and case_reference(LISTED) in listing.text
    assert "Campbell" not in listing.text
    assert 'href="/ig/merges"' in listing.text  # in the IG navigation
    assert not app.state.access_log.entries("viewed")
    page_ = client.get(f"/ig/merges/{CONFIRMED}")
    assert page_.status_code == 200
    assert "same person: initial only" in page_.text and QUEUED[:12] in page_.text
    [entry] = app.state.access_log.entries("viewed")
    assert entry["what"] == "merge" and set(entry["keys"]) == {QUEUED, LISTED}
    assert client.get(f"/ig/merges/{'0' * 8}-0000-4000-8000-{'0' * 12}").status_code == 404


def test_a_split_needs_a_reason_free_of_personal_data_and_a_merge_is_split_once(merged):
    app, published, _ = merged
    client = TestClient(app)
    sign_in(client, "ian")
    token = csrf(client.get(f"/ig/merges/{CONFIRMED}").text)
    url = f"/ig/merges/{CONFIRMED}/split"
    for reason, message in (
        ("", "Say why the merge was wrong"),
        ("  ", "Say why the merge was wrong"),
        ("born 01/02/1950, not him", "seems to hold a date"),
        ("CHI 0101501234 is another", "seems to hold a number"),
        ("lives at EH1 1YZ", "seems to hold a postcode"),
    ):
        response = client.post(url, data={"reason": reason, "csrf_token": token})
        assert response.status_code == 400 and message in response.text, reason
        assert "There is a problem" in response.text
        assert "0101501234" not in response.text and "EH1 1YZ" not in response.text
    response = client.post(url, data={"reason": "a relative", "csrf_token": "forged"})
    assert response.status_code == 403
    assert published == []

    response = client.post(
        url, data={"reason": "wrong merge: a relative", "csrf_token": token}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ig/merges?split=")
    [record] = published
    assert record["action"] == "SPLIT" and record["reason"] == "wrong merge: a relative"
    assert (record["person_key"], record["other_person_key"]) == (QUEUED, LISTED)
    assert record["reviewer"] == "accord-reviewer" and record["reviewer_ref"] == "ian"
    done = client.get(response.headers["location"])
    assert "The split was sent" in done.text and "No merge confirmed in review stands" in done.text
    # Split already: the page and a second split are 404, nothing more is sent.
    assert client.get(f"/ig/merges/{CONFIRMED}").status_code == 404
    again = client.post(url, data={"reason": "wrong merge", "csrf_token": token})
    assert again.status_code == 404 and "Nothing was changed" in again.text
    assert len(published) == 1
    split = [e for e in app.state.access_log.entries("viewed") if e["what"] == "merge split"]
    assert [set(e["keys"]) for e in split] == [{QUEUED, LISTED}]


def test_the_hub_away_is_503_and_nothing_is_split(merged):
    app, published, down = merged
    client = TestClient(app)
    sign_in(client, "ian")
    token = csrf(client.get(f"/ig/merges/{CONFIRMED}").text)
    down.append("publish")
    response = client.post(
        f"/ig/merges/{CONFIRMED}/split", data={"reason": "a relative", "csrf_token": token}
    )
    assert response.status_code == 503 and "Nothing was changed" in response.text
    assert published == []
    assert not [e for e in app.state.access_log.entries("viewed") if e["what"] == "merge split"]
    down[:] = ["read"]
    assert client.get("/ig/merges").status_code == 503
    assert client.get(f"/ig/merges/{CONFIRMED}").status_code == 503
    down.clear()
    assert CONFIRMED[:8] in client.get("/ig/merges").text  # still there to split


def test_only_ig_officers_split(merged):
    app, published, _ = merged
    client = TestClient(app)
    sign_in(client, "alice")
    assert client.get("/ig/merges").status_code == 403
    token = csrf(client.get("/cases").text)
    response = client.post(
        f"/ig/merges/{CONFIRMED}/split", data={"reason": "a relative", "csrf_token": token}
    )
    assert response.status_code == 403 and published == []
    assert [e["path"] for e in app.state.access_log.entries("denied")] == [
        f"/ig/merges/{CONFIRMED}/split",
        "/ig/merges",
    ]  # refused for the role (recorded), not for the token


def test_a_deployed_console_reviews_with_the_reviewers_own_secret(tmp_path):
    # Deployed: ACCORD_PRINCIPAL is the console's; the reviewer's secret is its own file.
    deployed = Settings(
        state_dir=tmp_path,
        principal="accord-console",
        secret_file=tmp_path / "console-password",
        console_reviewer_secret_file=tmp_path / "reviewer-password",
    )
    reviewer = page.console_reviewer(deployed)
    assert reviewer.principal == "accord-reviewer"
    assert reviewer.secret_file == tmp_path / "reviewer-password" and reviewer.secret is None
    (tmp_path / "reviewer-password").write_text("s3cret-of-the-reviewer\n")
    held = held_credential(reviewer, "accord-reviewer")
    assert held.principal == "accord-reviewer"
    assert held.secret.get_secret_value() == "s3cret-of-the-reviewer"
    # Local: no principal chosen, the stack's saved credential of the reviewer.
    local = page.console_reviewer(Settings(state_dir=tmp_path))
    assert local.principal == "accord-reviewer" and local.secret_file is None
