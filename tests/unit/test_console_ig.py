"""The IG pages' pure parts: agreement summaries and warnings, decisions over time from an
audit index, the SVG chart, deny reasons and counts, the candidate upload's limits and
path checks, the status edit of an agreement file, the sharing-stop measure and the
who-received form's CHI handling."""

from __future__ import annotations

import io
import shutil
import tarfile
import zipfile
from datetime import UTC, date, datetime, timedelta

import pytest
import yaml

from accord.console import ig_data, ig_status, ig_upload
from accord.core.pseudonym import person_key
from accord.core.settings import Settings
from accord.governance.audit_index import INSERT, SEPARATOR, connect
from accord.pipeline.retention import agreements_from_dir

TODAY = date(2026, 12, 2)
POLICIES = Settings().policies_dir


def agreement(**changes):
    base = {
        "id": "DSA-900",
        "title": "A test agreement",
        "status": "active",
        "version": 1,
        "valid_from": "2026-01-01T00:00:00Z",
        "valid_until": "2027-12-31T23:59:59Z",
        "review_date": "2027-06-01",
        "providers": ["nhs-lothian"],
        "recipients": [
            {"org": "city-of-edinburgh", "kind": "council", "council_area": "City of Edinburgh"}
        ],
        "purposes": ["shielding-support"],
        "lawful_basis": {"article_6": "6(1)(e) public task"},
        "datasets": {
            "shielding-list": {"fields": ["given_name", "address_line1"], "derived": ["needs"]}
        },
        "conditions": {"resident_in_recipient_area": True},
        "children": {"permitted": False},
        "retention": {"days": 90, "then": "delete"},
        "clauses": {
            "10.1": {"topic": "review", "text": "Ten"},
            "2.1": {"topic": "purpose", "text": "Two"},
        },
    }
    base.update(changes)
    return base


# --- agreements ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "kinds", "words"),
    [
        ({}, [], []),
        ({"review_date": "2026-11-20"}, ["review"], ["has passed (12 days ago)"]),
        ({"review_date": "2026-12-01"}, ["review"], ["1 day ago"]),
        ({"review_date": "2026-12-02"}, ["review"], ["due today"]),
        ({"review_date": "2026-12-20"}, ["review"], ["due in 18 days"]),
        ({"review_date": "2027-01-02"}, [], []),  # 31 days: no warning yet
        ({"valid_until": "2026-12-31T23:59:59Z"}, ["expiry"], ["expires in 29 days"]),
        ({"valid_until": "2026-11-30T00:00:00Z"}, ["expiry"], ["ended on 30 November 2026"]),
        (
            {"valid_until": "2026-12-10T00:00:00Z", "review_date": "2026-10-01"},
            ["review", "expiry"],
            ["has passed", "expires in 8 days"],
        ),
        ({"status": "expired", "review_date": "2020-01-01"}, [], []),
        ({"review_date": "not a date"}, [], []),
    ],
)
def test_warnings_for_review_dates_and_expiry(changes, kinds, words):
    found = ig_data.warnings_of(agreement(**changes), TODAY)
    assert [w.kind for w in found] == kinds
    for warning, text in zip(found, words, strict=True):
        assert text in warning.message


def test_a_summary_has_parties_terms_clauses_in_order_and_plain_words():
    s = ig_data.summarise("DSA-900", agreement(), TODAY)
    assert s.status == "active" and s.status_tag == "govuk-tag--green"
    assert s.providers == ["nhs-lothian"]
    assert s.recipients == ["city-of-edinburgh (council, City of Edinburgh)"]
    assert s.valid_until == "31 December 2027" and s.review_date == "1 June 2027"
    assert [c.number for c in s.clauses] == ["2.1", "10.1"]  # numeric, not text, order
    assert ("UK GDPR Article 6", "6(1)(e) public task") in s.lawful_basis
    assert s.plain_words[0] == (
        "nhs-lothian share given name, address line 1 and needs from the shielding list "
        "with city-of-edinburgh."
    )
    assert "Only people who live in the recipient's council area are shared." in s.plain_words
    assert "Records of children (under 18) are never shared." in s.plain_words
    assert any("at most 90 days" in w for w in s.plain_words)


def test_every_agreement_in_the_repository_summarises():
    found = ig_data.summaries(agreements_from_dir(POLICIES), TODAY)
    assert len(found) >= 15
    food = next(s for s in found if s.id == "DSA-015")
    assert (
        "community-food-network (third-sector, City of Edinburgh and Midlothian)" in food.recipients
    )
    assert any("community-food-network" in w for w in food.plain_words)
    assert all(s.clauses for s in found)


def test_recipient_fields_are_said_per_recipient():
    a = agreement(
        recipients=[{"org": "a-org", "kind": "council"}, {"org": "b-org", "kind": "health"}],
        datasets={
            "shielding-list": {
                "fields": ["given_name"],
                "recipient_fields": {"b-org": ["clinical_risk_group"]},
            }
        },
    )
    words = ig_data.plain_words(a)
    assert "nhs-lothian share given name from the shielding list with a-org." in words
    assert "nhs-lothian share clinical risk group from the shielding list with b-org." in words


# --- decisions over time --------------------------------------------------------------------


def row(
    n,
    at,
    agreement_id="DSA-015",
    recipient="community-food-network",
    allow=True,
    reasons=(),
    clauses=(),
    principles=(),
    fields=("given_name",),
    key="k",
):
    return (
        f"d{n}", int(at.timestamp() * 1000), "nhs-lothian", "shielding-list", recipient,
        "shielding-support", agreement_id, 1, 1 if allow else 0,
        SEPARATOR.join(fields if allow else ()), "", SEPARATOR.join(reasons), "rev",
        f"{key}{n}", SEPARATOR.join(clauses), SEPARATOR.join(principles),
    )  # fmt: skip


@pytest.fixture
def db(tmp_path):
    db = connect(tmp_path / "index.sqlite3")
    t0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    rows = [row(i, t0 + timedelta(seconds=10 * i)) for i in range(6)]  # 10:00:00 .. 10:00:50
    rows += [
        row(10 + i, t0 + timedelta(minutes=3, seconds=i), allow=False,
            reasons=["DSA-015 is suspended (audit)", "second reason"], clauses=["7.1"],
            principles=["lawfulness"])
        for i in range(4)
    ]  # fmt: skip
    rows += [
        row(20, t0 + timedelta(minutes=3), allow=False,
            reasons=["withdrawn: DSA-015 is suspended"]),
        row(30, t0 + timedelta(minutes=1), agreement_id="DSA-010", recipient="city-of-edinburgh",
            fields=("given_name", "postcode")),
        row(31, t0 + timedelta(minutes=1), agreement_id="DSA-010", recipient="city-of-edinburgh",
            allow=False, reasons=["not resident"], clauses=["4.1"], principles=["minimisation"]),
    ]  # fmt: skip
    with db:
        db.executemany(INSERT, rows)
    yield db
    db.close()


def test_decision_series_buckets_by_minute_and_fills_gaps(db):
    since = datetime(2026, 12, 1, tzinfo=UTC)
    series = ig_data.decision_series(db, "DSA-015", since)
    assert series.unit == "minute"
    assert [(b.start.minute, b.shared, b.withheld, b.withdrawn) for b in series.buckets] == [
        (0, 6, 0, 0),
        (1, 0, 0, 0),
        (2, 0, 0, 0),
        (3, 0, 4, 1),
    ]
    assert series.totals == (6, 4, 1)
    assert ig_data.decision_series(db, "DSA-999", since).buckets == []
    later = ig_data.decision_series(db, "DSA-015", datetime(2026, 12, 2, 10, 2, tzinfo=UTC))
    assert later.totals == (0, 4, 1)


@pytest.mark.parametrize(
    ("span", "unit"),
    [
        (timedelta(seconds=5), "minute"),
        (timedelta(minutes=59), "minute"),
        (timedelta(hours=3), "10 minutes"),
        (timedelta(hours=30), "hour"),
        (timedelta(days=7), "day"),
        (timedelta(days=400), "day"),
    ],
)
def test_the_bucket_fits_the_span(span, unit):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert ig_data.choose_bucket(start, start + span)[1] == unit


def test_deny_reasons_rank_the_first_reason_clauses_and_principles_without_withdrawals(db):
    since = datetime(2026, 12, 1, tzinfo=UTC)
    reasons, clauses, principles = ig_data.deny_reasons(db, since)
    assert reasons[0] == ig_data.Ranked("DSA-015 is suspended (audit)", 4)
    assert all("withdrawn" not in r.label and r.label != "second reason" for r in reasons)
    assert clauses == [
        ig_data.Ranked("DSA-015 clause 7.1", 4),
        ig_data.Ranked("DSA-010 clause 4.1", 1),
    ]
    assert principles[0] == ig_data.Ranked("lawfulness", 4)
    only = ig_data.deny_reasons(db, since, "DSA-010")
    assert [r.label for r in only[0]] == ["not resident"]


def test_counts_by_recipient_and_field(db):
    found = ig_data.recipient_counts(db, datetime(2026, 12, 1, tzinfo=UTC))
    by = {r.recipient: r for r in found}
    food = by["community-food-network"]
    assert (food.shared, food.withheld, food.withdrawn) == (6, 4, 1)
    assert food.fields == [ig_data.Ranked("given_name", 6)]
    assert [f.label for f in by["city-of-edinburgh"].fields] == ["given_name", "postcode"]


def test_the_chart_is_escaped_svg_with_a_bar_per_bucket(db):
    series = ig_data.decision_series(db, "DSA-015", datetime(2026, 12, 1, tzinfo=UTC))
    svg = str(ig_data.chart_svg(series))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert 'role="img"' in svg and "aria-labelledby" in svg
    assert "6 shared, 4 withheld, 1 withdrawn" in svg
    assert svg.count("<rect") == 3  # bucket 0 (shared), bucket 3 (withheld + withdrawn)
    assert "style=" not in svg  # the CSP allows no inline style
    assert ig_data.SHARED_COLOUR in svg and ig_data.WITHHELD_COLOUR in svg
    hostile = ig_data.Series("<script>", timedelta(minutes=1), "minute", [])
    assert "<script>" not in str(ig_data.chart_svg(hostile))
    assert "No decisions" in str(ig_data.chart_svg(hostile))


# --- the CHI form -------------------------------------------------------------------------

GOOD_CHI = "0101011237"  # a valid synthetic CHI (mod 11)


def test_a_chi_is_hashed_and_bad_ones_are_refused_without_quoting_them():
    settings = Settings()
    secret = settings.require_pseudonym_key()
    key, error = ig_data.chi_key(settings, " 010101 1237 ")
    assert error is None and key == person_key(secret, GOOD_CHI)
    for bad in ("", "   ", "12345", "010101123X", "0101011238", "9" * 500):
        key, error = ig_data.chi_key(settings, bad)
        assert key is None and error
        assert bad.strip() == "" or bad not in error


# --- candidate uploads ----------------------------------------------------------------------


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def policy_files(prefix: str = "policies/") -> dict[str, bytes]:
    out = {}
    for path in POLICIES.rglob("*"):
        if path.is_file():
            out[prefix + str(path.relative_to(POLICIES))] = path.read_bytes()
    return out


def test_a_zip_of_policies_unpacks_to_its_policies_folder(tmp_path):
    root = ig_upload.unpack(zipped(policy_files()), "candidate.zip", tmp_path / "x")
    assert root == tmp_path / "x" / "policies"
    assert (root / "agreements" / "DSA-015.yaml").is_file()
    assert ig_upload.agreement_problems(root) == []
    assert oct((tmp_path / "x").stat().st_mode & 0o777) == "0o700"


def test_a_tar_gz_without_a_top_folder_unpacks(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in policy_files(prefix="").items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    root = ig_upload.unpack(buffer.getvalue(), "c.tgz", tmp_path / "x")
    assert root == tmp_path / "x"


def tar_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.addfile(member, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def _link(name: str, kind: bytes, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _file(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


@pytest.mark.parametrize(
    ("data", "name", "status", "words"),
    [
        (b"", "x.zip", 400, "empty"),
        (b"not an archive at all", "x.zip", 400, "not a .zip or .tar"),
        (b"x" * (ig_upload.MAX_ARCHIVE_BYTES + 1), "x.zip", 413, "at most"),
        (zipped({"../evil.yaml": b"a"}), "x.zip", 400, "leaves its folder"),
        (zipped({"/etc/evil.yaml": b"a"}), "x.zip", 400, "leaves its folder"),
        (zipped({"big": b"\0" * (ig_upload.MAX_INFLATED_BYTES + 1)}), "x.zip", 413, "unpack to"),
        (zipped({f"f{i}": b"" for i in range(ig_upload.MAX_MEMBERS + 1)}), "x.zip", 413, "files"),
        (zipped({"notes/readme.txt": b"hello"}), "x.zip", 422, "not a policies folder"),
        (tar_with(_link("policies/agreements", tarfile.SYMTYPE, "/etc")), "x.tar", 400, "link"),
        (tar_with(_link("hard", tarfile.LNKTYPE, "/etc/passwd")), "x.tar", 400, "link"),
        (tar_with(_file("../../x", 1), b"a"), "x.tar", 400, "leaves its folder"),
    ],
)
def test_bad_archives_are_refused_with_a_status_and_write_nothing_outside(
    tmp_path, data, name, status, words
):
    with pytest.raises(ig_upload.CandidateRefused) as refused:
        ig_upload.unpack(data, name, tmp_path / "x")
    assert refused.value.status == status
    assert words in refused.value.message
    assert (
        not (tmp_path / "evil.yaml").exists()
        and not (tmp_path / "x").parent.joinpath("x", "..", "x").is_symlink()
    )
    assert str(tmp_path) not in refused.value.message


def test_a_symlink_in_a_zip_is_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("policies/agreements")
        info.external_attr = (0o120777) << 16
        archive.writestr(info, "/etc")
    with pytest.raises(ig_upload.CandidateRefused, match="symbolic link"):
        ig_upload.unpack(buffer.getvalue(), "x.zip", tmp_path / "x")


def test_a_candidate_with_a_broken_agreement_is_named_by_file(tmp_path):
    files = policy_files()
    files["policies/agreements/DSA-015.yaml"] = files["policies/agreements/DSA-015.yaml"].replace(
        b"status: active", b"status: paused"
    )
    root = ig_upload.unpack(zipped(files), "c.zip", tmp_path / "x")
    problems = ig_upload.agreement_problems(root)
    assert problems and all(p.startswith("agreements/DSA-015.yaml") for p in problems)
    assert any("status" in p for p in problems)


def test_a_folder_is_taken_only_under_the_allowed_roots(tmp_path):
    copy = tmp_path / "allowed" / "policies"
    shutil.copytree(POLICIES, copy)
    assert ig_upload.allowed_folder(str(copy), [tmp_path / "allowed"]) == copy.resolve()
    outside = tmp_path / "outside"
    shutil.copytree(POLICIES, outside)
    (tmp_path / "allowed" / "link").symlink_to(outside)
    for given, status in (
        (str(outside), 403),
        (str(tmp_path / "allowed" / "link"), 403),  # a link out of the root
        (str(tmp_path / "allowed" / "nothing"), 422),
        (str(tmp_path / "allowed"), 422),  # not a policies folder
        ("", 400),
    ):
        with pytest.raises(ig_upload.CandidateRefused) as refused:
            ig_upload.allowed_folder(given, [tmp_path / "allowed"])
        assert refused.value.status == status, given


# --- suspend and reactivate -----------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    copy = tmp_path / "policies"
    shutil.copytree(POLICIES, copy)
    return copy


def test_suspend_then_reactivate_edits_only_the_state_and_keeps_comments(folder):
    path = folder / "agreements" / "DSA-015.yaml"
    before = path.read_text()
    change = ig_status.set_status(folder, "DSA-015", "suspend", "  incident   IG-42: paused ")
    after = path.read_text()
    loaded = yaml.safe_load(after)["DSA-015"]
    assert loaded["status"] == "suspended"
    assert loaded["status_reason"] == "incident IG-42: paused"
    assert (change.before, change.after) == ("active", "suspended")
    assert "# Data-sharing agreement" in after  # comments kept
    assert "status: suspended # draft | active | suspended | expired" in after
    old = yaml.safe_load(before)["DSA-015"]
    state = ("status", "status_reason")
    assert {k: v for k, v in loaded.items() if k not in state} == {
        k: v for k, v in old.items() if k not in state
    }
    assert not list(folder.glob("agreements/.*"))  # nothing staged is left
    with pytest.raises(ig_status.StatusRefused) as refused:
        ig_status.set_status(folder, "DSA-015", "suspend", "again please")
    assert refused.value.status == 409
    ig_status.set_status(folder, "DSA-015", "reactivate", 'review done "ok"')
    back = yaml.safe_load(path.read_text())["DSA-015"]
    assert back["status"] == "active" and back["status_reason"] == 'review done "ok"'
    assert path.read_text().count("status_reason") == 1


@pytest.mark.parametrize(
    ("agreement_id", "action", "reason", "status"),
    [
        ("DSA-015", "suspend", "", 400),
        ("DSA-015", "suspend", "abc", 400),
        ("DSA-015", "suspend", "x" * 201, 400),
        ("DSA-015", "suspend", "bad\x1bchars here", 400),
        ("DSA-015", "delete", "a good reason", 400),
        ("DSA-999", "suspend", "a good reason", 404),
        ("../etc/passwd", "suspend", "a good reason", 404),
        ("DSA-015", "reactivate", "a good reason", 409),
    ],
)
def test_refused_changes_leave_the_file_as_it_was(folder, agreement_id, action, reason, status):
    path = folder / "agreements" / "DSA-015.yaml"
    before = path.read_text()
    with pytest.raises(ig_status.StatusRefused) as refused:
        ig_status.set_status(folder, agreement_id, action, reason)
    assert refused.value.status == status
    assert path.read_text() == before


def test_a_change_that_fails_validation_is_not_written(folder):
    path = folder / "agreements" / "DSA-015.yaml"
    before = path.read_text()
    with pytest.raises(ig_status.StatusRefused) as refused:
        ig_status.set_status(
            folder, "DSA-015", "suspend", "a good reason", validate=lambda a: ["no"]
        )
    assert refused.value.status == 500 and path.read_text() == before


def test_changes_are_recorded_0600_newest_first(tmp_path, folder):
    log = tmp_path / "console" / "agreement-changes.jsonl"
    first = ig_status.set_status(folder, "DSA-015", "suspend", "first reason")
    ig_status.record_change(log, first, "ig-officer")
    second = ig_status.set_status(folder, "DSA-015", "reactivate", "second reason")
    ig_status.record_change(log, second, "ig-officer")
    found = ig_status.changes(log, "DSA-015")
    assert [c["reason"] for c in found] == ["second reason", "first reason"]
    assert found[1]["user"] == "ig-officer" and found[1]["to"] == "suspended"
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    assert ig_status.changes(log, "DSA-010") == []


def test_the_list_measure_counts_people_before_and_now_and_the_last_removal():
    records = [
        (b"a", 10.0, False),
        (b"b", 11.0, False),
        (b"c", 12.0, False),
        (b"c", 13.0, True),  # removed before the change
        (b"a", 21.5, True),
        (b"d", 22.0, False),  # shared after the change
        (b"b", 20.5, True),  # another partition, earlier broker time
        (None, 23.0, True),
    ]
    m = ig_status.measure_list("org", records, since=20.0)
    assert (m.before, m.now, m.tombstones, m.shares_after) == (2, 1, 2, 1)
    assert m.last_tombstone_s == pytest.approx(1.5)
    empty = ig_status.measure_list("org", [], since=1.0)
    assert (empty.before, empty.now, empty.last_tombstone_s) == (0, 0, None)


def test_the_list_measure_counts_people_under_the_changed_agreement_by_header():
    records = [
        (b"a", 10.0, False, "DSA-015"),
        (b"b", 11.0, False, "DSA-010"),
        (b"c", 12.0, False, ""),  # the recipient's own data
        (b"a", 21.0, True, "DSA-015"),
        (b"e", 22.0, False, "DSA-015"),
    ]
    m = ig_status.measure_list("org", records, since=20.0, agreement_id="DSA-015")
    assert (m.before, m.under_before, m.now, m.under_now) == (3, 1, 3, 1)
    assert ig_status.measure_list("org", records, 20.0).under_now == 0
