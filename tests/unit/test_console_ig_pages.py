"""The IG pages through the console application (no Kafka: an audit index made by the test,
share-topic records given by the test): every page for the IG role only, suspension
through the form with a required reason and CSRF, the sharing measure, who-received
hashing the CHI without echoing it anywhere, uploads refused with their status codes and
nothing changed, the access log view."""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
import yaml

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from accord.console.app import create_app  # noqa: E402
from accord.console.users import UserStore  # noqa: E402
from accord.core.pseudonym import person_key  # noqa: E402
from accord.core.settings import Settings  # noqa: E402
from accord.governance.audit_index import INSERT, SEPARATOR, connect, index_path  # noqa: E402

PASSWORD = "correct horse battery staple"
CHI = "0101011237"


@pytest.fixture(scope="module")
def users_file(tmp_path_factory):
    """Argon2id hashing takes a second or more on a loaded machine: hash once."""
    path = tmp_path_factory.mktemp("users") / "users.json"
    users = UserStore(path)
    users.add("ig-officer", "ig", PASSWORD)
    users.add("coord", "coordinator", PASSWORD, org="city-of-edinburgh")
    return path


@pytest.fixture
def env(tmp_path, users_file):
    settings = Settings(state_dir=tmp_path / "state")
    settings.console_users_path.parent.mkdir(parents=True, mode=0o700)
    shutil.copy(users_file, settings.console_users_path)
    users = UserStore(settings.console_users_path)
    policies = tmp_path / "policies"
    shutil.copytree(settings.policies_dir, policies)
    app = create_app(settings, users=users)
    app.state.ig_policies_dir = policies
    app.state.ig_catch_up = False
    app.state.ig_candidate_roots = [tmp_path]
    now = datetime.now(UTC).timestamp()
    app.state.ig_share_records = lambda org: [
        (b"a", now - 60, False),
        (b"b", now - 50, False),
        (b"a", now + 3600, True),  # a removal after any change the test makes
    ]
    key = person_key(settings.require_pseudonym_key(), CHI)
    db = connect(index_path(settings))
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    rows = [
        (f"d{i}", int((t0 + timedelta(seconds=i)).timestamp() * 1000), "nhs-lothian",
         "shielding-list", "community-food-network", "shielding-support", "DSA-015", 1,
         1 if i < 3 else 0, "given_name" if i < 3 else "",
         "", "" if i < 3 else SEPARATOR.join(["DSA-015 is suspended (incident)"]), "rev",
         key if i == 0 else f"other{i}", "" if i < 3 else "7.1", "" if i < 3 else "lawfulness")
        for i in range(5)
    ]  # fmt: skip
    with db:
        db.executemany(INSERT, rows)
    db.close()
    return app, settings, policies, key


def signed_in(app, username="ig-officer") -> TestClient:
    client = TestClient(app, base_url="https://testserver")
    page = client.get("/sign-in")
    token = csrf(page.text)
    answer = client.post(
        "/sign-in",
        data={"username": username, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return client


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


IG_PAGES = [
    "/ig/agreements",
    "/ig/agreements/DSA-015",
    "/ig/agreements/DSA-015/sharing",
    "/ig/decisions",
    "/ig/decisions?agreement=DSA-015&since=1h",
    "/ig/policy-change",
    "/ig/who-received",
    "/ig/access-log",
]


def test_every_ig_page_renders_for_an_ig_officer_and_is_refused_to_a_coordinator(env):
    app, *_ = env
    officer, coordinator = signed_in(app), signed_in(app, "coord")
    for path in IG_PAGES:
        assert officer.get(path).status_code == 200, path
        refused = coordinator.get(path)
        assert refused.status_code == 403, path
        denied = app.state.access_log.entries(kind="denied")
        assert denied[0]["user"] == "coord" and denied[0]["path"] == path.split("?")[0]


def test_without_a_session_the_pages_go_to_sign_in(env):
    app, *_ = env
    answer = TestClient(app, base_url="https://testserver").get(
        "/ig/agreements", follow_redirects=False
    )
    assert answer.status_code == 303 and answer.headers["location"].startswith("/sign-in")


def test_agreements_show_warnings_clauses_and_no_contact_details(env):
    app, *_ = env
    client = signed_in(app)
    page = client.get("/ig/agreements").text
    assert "DSA-015" in page and "community-food-network" in page
    detail = client.get("/ig/agreements/DSA-015").text
    assert "Only residents of the council areas the partner serves" in detail  # clause 4.1
    assert "In plain words" in detail and "Lawful basis" in detail
    assert "Suspend DSA-015" in detail
    assert client.get("/ig/agreements/DSA-999").status_code == 404


def test_suspending_needs_a_reason_and_a_csrf_token_then_changes_the_file(env):
    app, settings, policies, _ = env
    client = signed_in(app)
    path = policies / "agreements" / "DSA-015.yaml"
    before = path.read_text()
    token = csrf(client.get("/ig/agreements/DSA-015").text)
    forged = client.post(
        "/ig/agreements/DSA-015/status",
        data={"action": "suspend", "reason": "incident IG-7", "csrf_token": "forged"},
    )
    assert forged.status_code == 403 and path.read_text() == before
    no_reason = client.post(
        "/ig/agreements/DSA-015/status",
        data={"action": "suspend", "reason": " ", "csrf_token": token},
    )
    assert no_reason.status_code == 400 and "Enter a reason" in no_reason.text
    assert path.read_text() == before
    done = client.post(
        "/ig/agreements/DSA-015/status",
        data={"action": "suspend", "reason": "incident IG-7", "csrf_token": token},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/ig/agreements/DSA-015/sharing"
    agreement = yaml.safe_load(path.read_text())["DSA-015"]
    assert (agreement["status"], agreement["status_reason"]) == ("suspended", "incident IG-7")
    sharing = client.get(done.headers["location"]).text
    assert "DSA-015 is now suspended" in sharing
    assert 'data-recipient-now="community-food-network">1<' in sharing  # b remains
    assert "none yet" not in sharing  # the last removal after the change is timed
    assert "(0)" in sharing  # the test's records carry no agreement header
    again = client.post(
        "/ig/agreements/DSA-015/status",
        data={"action": "suspend", "reason": "incident IG-7", "csrf_token": token},
    )
    assert again.status_code == 409
    log = settings.console_dir / "agreement-changes.jsonl"
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["user"] == "ig-officer" and entry["to"] == "suspended"
    assert "Reactivate DSA-015" in client.get("/ig/agreements/DSA-015").text


def test_a_read_only_policies_folder_gets_a_clear_page_not_a_500(env, monkeypatch):
    """Compose mounts ./policies read-only and the chart bakes them into the image: the
    page says where agreements are changed instead, and changes nothing."""
    import errno
    import os
    from pathlib import Path

    if os.geteuid() == 0:
        # root writes through a 0555 directory; a read-only mount refuses even root, as
        # the kernel does here (EROFS) for the staged file.
        write_text = Path.write_text

        def read_only_mount(self, *args, **kwargs):
            if self.name.endswith(".staged"):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
            return write_text(self, *args, **kwargs)

        monkeypatch.setattr(Path, "write_text", read_only_mount)
    app, settings, policies, _ = env
    client = signed_in(app)
    folder = policies / "agreements"
    path = folder / "DSA-015.yaml"
    before = path.read_text()
    token = csrf(client.get("/ig/agreements/DSA-015").text)
    folder.chmod(0o555)
    try:
        refused = client.post(
            "/ig/agreements/DSA-015/status",
            data={"action": "suspend", "reason": "incident IG-7", "csrf_token": token},
        )
    finally:
        folder.chmod(0o755)
    assert refused.status_code == 409, refused.text
    assert "The agreement was not changed" in refused.text
    assert "policies folder is read-only" in refused.text
    assert "reviewed commit" in refused.text
    assert path.read_text() == before
    assert not any(p.name.endswith(".staged") for p in folder.iterdir())
    assert not (settings.console_dir / "agreement-changes.jsonl").exists()


def test_decisions_show_the_chart_deny_reasons_and_counts(env):
    app, *_ = env
    page = signed_in(app).get("/ig/decisions?agreement=DSA-015&since=1h").text
    assert "<svg" in page and "3 shared, 2 withheld, 0 withdrawn" in page
    assert "DSA-015 is suspended (incident)" in page
    assert "DSA-015 clause 7.1" in page and "lawfulness" in page
    assert "given_name 3" in page
    unknown = signed_in(app).get("/ig/decisions?agreement=DSA-999")
    assert unknown.status_code == 404


def test_who_received_hashes_the_chi_and_never_echoes_it(env):
    app, settings, _, key = env
    client = signed_in(app)
    token = csrf(client.get("/ig/who-received").text)
    spaced = "010101 1237"
    answer = client.post("/ig/who-received", data={"chi": spaced, "csrf_token": token})
    assert answer.status_code == 200
    assert key[:16] in answer.text and "community-food-network" in answer.text
    assert CHI not in answer.text and spaced not in answer.text
    assert CHI not in str(answer.url)
    bad = client.post("/ig/who-received", data={"chi": "0101011238", "csrf_token": token})
    assert bad.status_code == 400 and "0101011238" not in bad.text
    assert "check digit" in bad.text
    viewed = app.state.access_log.entries(kind="viewed")
    assert viewed[0]["keys"] == [key] and viewed[0]["what"] == "who-received"
    stored = "".join(p.read_text(errors="ignore") for p in settings.state_dir.rglob("*.json*"))
    assert CHI not in stored
    log_page = client.get("/ig/access-log").text
    assert key[:12] in log_page and CHI not in log_page


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"x" * (2 * 1024 * 1024 + 10), 413, "at most"),
        (b"not an archive", 400, "not a .zip or .tar"),
        (zipped({"../escape.yaml": b"x"}), 400, "leaves its folder"),
        (zipped({"readme.txt": b"x"}), 422, "not a policies folder"),
    ],
)
def test_bad_uploads_get_a_clear_page_with_their_status_and_nothing_runs(env, data, status, words):
    app, settings, *_ = env
    client = signed_in(app)
    token = csrf(client.get("/ig/policy-change").text)
    answer = client.post(
        "/ig/policy-change",
        data={"source": "upload", "since": "7d", "csrf_token": token},
        files={"archive": ("candidate.zip", data, "application/zip")},
    )
    assert answer.status_code == status
    assert "could not be simulated" in answer.text and words in answer.text
    assert "Nothing was run and nothing has changed" in answer.text
    uploads = settings.console_dir / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())  # nothing left behind


def test_a_folder_outside_the_allowed_places_is_refused(env, tmp_path_factory):
    app, *_ = env
    client = signed_in(app)
    token = csrf(client.get("/ig/policy-change").text)
    answer = client.post(
        "/ig/policy-change",
        data={"source": "folder", "folder": "/etc", "since": "7d", "csrf_token": token},
    )
    assert answer.status_code == 403 and "only under" in answer.text
