"""The console's sign-in, sessions, roles, CSRF, limits and error pages, through its real
FastAPI application (no Kafka: the lists are an in-memory stand-in holding cases)."""

from __future__ import annotations

import asyncio
import re
import stat
from datetime import UTC, datetime

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from accord.console.app import MAX_BODY_BYTES, create_app
from accord.console.lists import RecipientList, list_changes
from accord.console.users import UserError, UserStore
from accord.coordinator import views
from accord.core.settings import Settings

PASSWORD = "correct horse battery staple"
EDINBURGH = "city-of-edinburgh"
KEY = "ab" * 32
# Argon2id with small costs: the same code, hashing in milliseconds on a loaded machine.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lists:
    """The live lists' interface, holding cases given by the test."""

    def __init__(self) -> None:
        self.lists: dict[str, RecipientList] = {}

    def get(self, org: str, wait_s: float = 0) -> RecipientList:
        if org not in self.lists:
            found = RecipientList(org, f"share.{org}")
            found.topic_exists = True
            found.ready.set()
            self.lists[org] = found
        return self.lists[org]

    def health(self) -> dict:
        return {}


def a_case(key: str = KEY, **fields) -> dict:
    return {
        "case_key": key,
        "recipient": EDINBURGH,
        "needs": ["WELFARE_CHECK"],
        "priority": "ROUTINE",
        "priority_reasons": [],
        "latest_outcome": None,
        "latest_outcome_at": None,
        "opened_at": datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        "open_requests": 0,
        "given_name": "Morag",
        "family_name": "Campbell",
        "address_line1": "1 High Street",
        "address_line2": "Flat 2/1",
        "town": "Edinburgh",
        "postcode": "EH1 1AA",
        "contact_phone": "+447700900123",
        "is_shielding": True,
        "fields_released": [
            "given_name",
            "family_name",
            "address_line1",
            "address_line2",
            "town",
            "postcode",
            "contact_phone",
            "shielding_status",
        ],
        "agreement_id": "DSA-010",
        "policy_revision": "rev-1",
        "decision_id": "00000000-0000-4000-8000-000000000001",
        "source_event_id": "00000000-0000-4000-8000-000000000002",
        "updated_at": datetime(2026, 12, 1, 9, 1, tzinfo=UTC),
        "match_method": "chi",
        "council_area": None,
        "date_of_birth": None,
        **fields,
    }


@pytest.fixture
def console(tmp_path):
    settings = Settings(
        state_dir=tmp_path,
        console_tls=False,
        console_login_per_minute=3,
        console_session_idle_s=100,
        console_session_max_s=250,
    )
    users = UserStore(settings.console_users_path, FAST)
    users.add("alice", "coordinator", PASSWORD, org=EDINBURGH)
    users.add("fiona", "coordinator", PASSWORD, org="fife")
    users.add("ian", "ig", PASSWORD)
    users.add("ada", "admin", PASSWORD)
    lists = Lists()
    lists.get(EDINBURGH).cases[KEY] = a_case()
    clock = Clock()
    app = create_app(settings, users=users, lists=lists, clock=clock)
    return app, clock


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client: TestClient, username: str, password: str = PASSWORD):
    token = csrf(client.get("/sign-in").text)
    return client.post(
        "/sign-in",
        data={"username": username, "password": password, "csrf_token": token},
        follow_redirects=False,
    )


def test_users_file_holds_only_argon2_hashes_0600(tmp_path):
    store = UserStore(tmp_path / "console" / "users.json", FAST)
    store.add("alice", "coordinator", PASSWORD, org=EDINBURGH)
    text = store.path.read_text()
    assert PASSWORD not in text and "$argon2id$" in text
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert store.authenticate("alice", PASSWORD).org == EDINBURGH
    assert store.authenticate("alice", PASSWORD + "x") is None
    assert store.authenticate("nobody", PASSWORD) is None


@pytest.mark.parametrize(
    ("username", "role", "password", "org", "says"),
    [
        ("alice", "coordinator", PASSWORD, None, "works for one recipient"),
        ("bob", "root", PASSWORD, None, "unknown role"),
        ("carol", "ig", "short", None, "at least 12"),
        ("Bad Name!", "ig", PASSWORD, None, "not a user name"),
    ],
)
def test_users_refused(tmp_path, username, role, password, org, says):
    with pytest.raises(UserError, match=says):
        UserStore(tmp_path / "users.json", FAST).add(username, role, password, org)


def test_sign_in_sets_a_strict_httponly_cookie_and_a_new_session(console):
    app, _ = console
    client = TestClient(app)
    anonymous = client.get("/sign-in").cookies.get("accord_session")
    response = sign_in(client, "alice")
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.cookies.get("accord_session") != anonymous  # no fixation
    page = client.get("/")
    assert page.url.path == f"/lists/{EDINBURGH}" and "Morag Campbell" in page.text


def test_secure_cookie_over_tls(tmp_path):
    settings = Settings(state_dir=tmp_path, console_tls=True)
    users = UserStore(settings.console_users_path, FAST)
    users.add("alice", "coordinator", PASSWORD, org=EDINBURGH)
    client = TestClient(create_app(settings, users=users, lists=Lists()), base_url="https://t")
    assert "Secure" in sign_in(client, "alice").headers["set-cookie"]


def test_wrong_password_says_nothing_about_which(console):
    app, _ = console
    client = TestClient(app)
    for username in ("alice", "nobody"):
        response = sign_in(client, username, "not the password")
        assert response.status_code == 401
        assert "The user name or password is not right" in response.text


def test_sign_in_attempts_are_limited(console):
    app, _ = console
    client = TestClient(app)
    codes = [sign_in(client, "alice", "wrong password!").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    # Even the right password is refused while limited (it is not checked).
    limited = sign_in(client, "alice")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


def test_forged_or_missing_csrf_changes_nothing(console):
    app, _ = console
    client = TestClient(app)
    sign_in(client, "alice")
    reference = views.case_reference(KEY)
    for token in ("forged", None):
        data = {"need": "WELFARE_CHECK", "outcome": "NO_ANSWER"}
        if token:
            data["csrf_token"] = token
        response = client.post(f"/lists/{EDINBURGH}/cases/{reference}/outcome", data=data)
        assert response.status_code == 403 and "Nothing has been changed" in response.text
    assert [e["reason"] for e in app.state.access_log.entries("denied")] == [
        "form without a valid CSRF token"
    ] * 2
    # Sign-out without the token is refused too: the session stays.
    assert client.post("/sign-out").status_code == 403
    assert client.get(f"/lists/{EDINBURGH}").status_code == 200


def test_sessions_expire_when_idle_and_after_the_maximum(console):
    app, clock = console
    client = TestClient(app)
    sign_in(client, "alice")
    clock.now += 99  # idle 100 s, maximum 250 s
    assert client.get("/cases").status_code == 200
    clock.now += 101
    response = client.get(f"/lists/{EDINBURGH}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/sign-in?expired=1"
    assert "Your session ended" in client.get("/sign-in?expired=1").text
    # Active all along, but past the maximum: an event stream's request gets 401.
    sign_in(client, "alice")
    for _ in range(2):
        clock.now += 90
        assert client.get("/cases").status_code == 200
    clock.now += 90
    response = client.get(f"/lists/{EDINBURGH}/events", headers={"accept": "text/event-stream"})
    assert response.status_code == 401 and "Your session has ended" in response.text


def test_a_removed_user_is_signed_out_at_the_next_request(console):
    app, _ = console
    client = TestClient(app)
    sign_in(client, "alice")
    app.state.users.remove("alice")
    response = client.get(f"/lists/{EDINBURGH}", follow_redirects=False)
    assert response.status_code == 303


def test_another_recipients_list_is_403_and_access_logged(console):
    app, _ = console
    client = TestClient(app)
    sign_in(client, "alice")
    for path in ("/lists/fife", "/lists/fife/export.csv", "/lists/fife/cases/AAAA-AAAA-AA"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "You cannot see this page" in response.text
    denied = app.state.access_log.entries("denied")
    assert {e["path"] for e in denied} == {
        "/lists/fife",
        "/lists/fife/export.csv",
        "/lists/fife/cases/AAAA-AAAA-AA",
    }
    assert all(e["user"] == "alice" and e["target"] == "fife" for e in denied)
    # An unknown recipient is 404, and recorded too.
    assert client.get("/lists/no-such-org").status_code == 404
    assert app.state.access_log.entries("denied")[0]["status"] == 404


@pytest.mark.parametrize(
    ("user", "path", "status"),
    [
        ("ian", f"/lists/{EDINBURGH}", 403),  # IG officers never see the lists
        ("ian", "/admin/users", 403),
        ("alice", "/admin/users", 403),
        ("ada", "/admin/users", 200),
        ("ada", f"/lists/{EDINBURGH}", 403),
    ],
)
def test_roles(console, user, path, status):
    app, _ = console
    client = TestClient(app)
    sign_in(client, user)
    assert client.get(path).status_code == status


def test_without_a_session_pages_go_to_sign_in(console):
    app, _ = console
    client = TestClient(app)
    response = client.get(f"/lists/{EDINBURGH}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/sign-in"


def test_page_views_of_personal_data_log_keys_never_names(console):
    app, _ = console
    client = TestClient(app)
    sign_in(client, "alice")
    client.get(f"/lists/{EDINBURGH}")
    client.get(f"/lists/{EDINBURGH}/cases/{views.case_reference(KEY)}")
    viewed = app.state.access_log.entries("viewed")
    assert [e["what"] for e in viewed] == ["case", "support list"]
    assert all(e["keys"] == [KEY] for e in viewed)
    text = app.state.access_log.path.read_text()
    assert "Campbell" not in text and "EH1 1AA" not in text and "7700900123" not in text
    assert stat.S_IMODE(app.state.access_log.path.stat().st_mode) == 0o600


def test_oversized_body_is_413_before_it_is_read(console):
    app, _ = console
    client = TestClient(app)
    sign_in(client, "alice")
    response = client.post(
        "/sign-out",
        content=b"x" * (MAX_BODY_BYTES + 1),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413 and "too large" in response.text
    assert client.get(f"/lists/{EDINBURGH}").status_code == 200  # still signed in


def test_outcome_form_errors_are_400_with_an_error_summary(console):
    app, _ = console
    client = TestClient(app)
    sign_in(client, "alice")
    reference = views.case_reference(KEY)
    page = client.get(f"/lists/{EDINBURGH}/cases/{reference}").text
    response = client.post(
        f"/lists/{EDINBURGH}/cases/{reference}/outcome",
        data={"need": "FOOD", "outcome": "", "csrf_token": csrf(page)},
    )
    assert response.status_code == 400
    assert "There is a problem" in response.text
    assert "Select which of the case" in response.text and "Select what happened" in response.text


def test_case_page_shows_every_released_field_and_provenance(console):
    app, _ = console
    client = TestClient(app)
    sign_in(client, "alice")
    page = client.get(f"/lists/{EDINBURGH}/cases/{views.case_reference(KEY).lower()}").text
    for text in ("Flat 2/1", "Edinburgh", "EH1 1AA", "DSA-010", "rev-1", KEY[:0] + "00000000-"):
        assert text in page
    assert client.get(f"/lists/{EDINBURGH}/cases/ZZZZ-ZZZZ-ZZ").status_code == 404
    assert client.get(f"/lists/{EDINBURGH}/cases/not-a-ref").status_code == 404


def test_security_headers(console):
    app, _ = console
    response = TestClient(app).get("/sign-in")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


def test_a_flood_of_anonymous_sessions_signs_nobody_out(monkeypatch):
    from accord.console import auth
    from accord.console.users import User

    monkeypatch.setattr(auth, "MAX_SESSIONS", 10)
    store = auth.SessionStore(100, 1000, Clock())
    signed_in = store.new(User("alice", "coordinator", EDINBURGH))
    for _ in range(50):
        store.new()
    assert store.get(signed_in.token)[0] is signed_in


def test_requests_are_counted_by_route_template_never_the_raw_path(console):
    from accord.core import metrics

    app, _ = console
    client = TestClient(app)
    sign_in(client, "alice")

    def count(route: str, status: str) -> float:
        return metrics.REQUESTS.labels("console", route, status)._value.get()

    before = count("/lists/{org}", "200")
    client.get(f"/lists/{EDINBURGH}")
    assert count("/lists/{org}", "200") == before + 1
    forbidden = count("/lists/{org}", "403")
    client.get("/lists/fife")
    assert count("/lists/{org}", "403") == forbidden + 1
    routes = {s.labels["route"] for m in metrics.REQUESTS.collect() for s in m.samples}
    assert not any(EDINBURGH in route or "fife" in route for route in routes)


# --- the live list's event stream ------------------------------------------------------------


def test_the_list_page_gives_its_event_stream_the_version_it_shows(console):
    app, _ = console
    client = TestClient(app)
    sign_in(client, "alice")
    live = app.state.lists.get(EDINBURGH)
    page = client.get(f"/lists/{EDINBURGH}").text
    assert f'data-events="/lists/{EDINBURGH}/events?v={live.stamp}"' in page
    filtered = client.get(f"/lists/{EDINBURGH}?need=welfare_check").text
    assert f"/events?need=welfare_check&amp;v={live.stamp}" in filtered


@pytest.mark.parametrize(
    "page_stamp",
    [
        pytest.param("rendered", id="changed between the page's render and its stream"),
        pytest.param(None, id="a page that gave no version"),
        pytest.param("0badcafe.1", id="a page from an earlier console process"),
        pytest.param("not a stamp", id="a malformed version"),
    ],
)
def test_a_list_change_the_page_does_not_show_is_sent_at_once(page_stamp):
    """The case closes (its tombstone) seconds after its outcome was recorded, between
    the list page's render and its event stream's start: the stream sends the list at once
    instead of leaving the closed case on the page until some later change."""

    async def first_of(live: RecipientList, stamp: str | None) -> bool:
        updates = list_changes(live, stamp, ping_s=0.05)
        try:
            return await asyncio.wait_for(anext(updates), 2)
        finally:
            await updates.aclose()

    live = RecipientList(EDINBURGH, f"share.{EDINBURGH}")
    live.cases[KEY] = a_case()
    live._changed()
    rendered = live.stamp
    del live.cases[KEY]  # the tombstone
    live._changed()
    stamp = rendered if page_stamp == "rendered" else page_stamp
    assert asyncio.run(first_of(live, stamp)) is True


def test_a_page_showing_the_list_as_it_is_waits_for_the_next_change():
    async def scenario() -> list[bool]:
        live = RecipientList(EDINBURGH, f"share.{EDINBURGH}")
        live._changed()
        updates = list_changes(live, live.stamp, ping_s=0.05)
        try:
            seen = [await asyncio.wait_for(anext(updates), 2)]  # nothing new: a keep-alive
            live._changed()
            seen.append(await asyncio.wait_for(anext(updates), 2))
            seen.append(await asyncio.wait_for(anext(updates), 2))  # quiet again
            return seen
        finally:
            await updates.aclose()
            assert not live._listeners  # the stream's listener is gone with it

    assert asyncio.run(scenario()) == [False, True, False]
