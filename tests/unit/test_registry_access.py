"""The registry's access rules and user store, as tables of cases."""

import stat

import pytest

from accord.core.credentials import ADMIN, AUDIT, CONSOLE, GATEWAY, REVIEWER, WORKER
from accord.core.settings import Settings
from accord.registry import access, users
from accord.registry.access import ADMINISTER, READ, REGISTER, Subject, may, parse_subject

LOTHIAN, FIFE = "nhs-lothian", "fife"


@pytest.mark.parametrize(
    ("subject", "parsed"),
    [
        (
            "partner.nhs-lothian.shielding-list.v1-value",
            Subject("partner", LOTHIAN, "nhs-lothian.shielding-list.v1"),
        ),
        (
            "t0a1b2c3d4.partner.fife.support-request.v1-value",
            Subject("partner", FIFE, "fife.support-request.v1"),
        ),
        ("share.fife.support-list-value", Subject("share", FIFE, "fife.support-list")),
        ("hub.quarantine-value", Subject("hub", None, "quarantine")),
        ("tenant.x.hub.audit.decisions-value", Subject("hub", None, "audit.decisions")),
        ("t1.peer-value", Subject(None, None, "t1.peer")),
        ("partner-value", Subject("partner", None, "")),
    ],
)
def test_subjects_are_read_by_family_after_any_prefix(subject, parsed):
    assert parse_subject(subject) == parsed


OWN = "t1.partner.nhs-lothian.shielding-list.v1-value"
OTHER = "t1.partner.fife.support-request.v1-value"
OWN_LIST = "t1.share.nhs-lothian.support-list-value"
OTHER_LIST = "t1.share.fife.support-list-value"
AUDIT_SUBJECT = "t1.hub.audit.decisions-value"
QUARANTINE = "t1.hub.quarantine-value"
OWN_REJECTS = "t1.rejects.nhs-lothian-value"
OTHER_REJECTS = "t1.rejects.city-of-edinburgh-value"


@pytest.mark.parametrize(
    ("principal", "action", "subject", "allowed"),
    [
        (LOTHIAN, REGISTER, OWN, True),
        (LOTHIAN, READ, OWN, True),
        (LOTHIAN, REGISTER, OTHER, False),
        (LOTHIAN, READ, OTHER, False),
        (LOTHIAN, READ, OWN_LIST, True),
        (LOTHIAN, REGISTER, OWN_LIST, False),
        (LOTHIAN, READ, OTHER_LIST, False),
        (LOTHIAN, READ, AUDIT_SUBJECT, False),
        (LOTHIAN, REGISTER, AUDIT_SUBJECT, False),
        (LOTHIAN, REGISTER, QUARANTINE, False),
        (LOTHIAN, REGISTER, OWN_REJECTS, True),
        (LOTHIAN, READ, OWN_REJECTS, True),
        (LOTHIAN, REGISTER, OTHER_REJECTS, False),
        (LOTHIAN, READ, OTHER_REJECTS, False),
        (WORKER, REGISTER, OTHER_REJECTS, True),
        (GATEWAY, REGISTER, OWN_REJECTS, True),
        (LOTHIAN, READ, None, True),
        (LOTHIAN, ADMINISTER, OWN, False),
        (LOTHIAN, ADMINISTER, None, False),
        (LOTHIAN, REGISTER, "t1.peer-value", False),
        # the prefix may not smuggle another organisation's subject in
        (LOTHIAN, REGISTER, "partner.fife.partner.nhs-lothian.x-value", False),
        (WORKER, READ, OTHER, True),
        (WORKER, REGISTER, OTHER_LIST, True),
        (WORKER, REGISTER, AUDIT_SUBJECT, True),
        (WORKER, REGISTER, OWN, False),
        (WORKER, ADMINISTER, OWN, False),
        (GATEWAY, REGISTER, OWN, True),
        (GATEWAY, REGISTER, QUARANTINE, True),
        (GATEWAY, REGISTER, OWN_LIST, False),
        (CONSOLE, READ, OTHER_LIST, True),
        (CONSOLE, REGISTER, OTHER_LIST, False),
        (AUDIT, READ, AUDIT_SUBJECT, True),
        (AUDIT, REGISTER, AUDIT_SUBJECT, False),
        (ADMIN, ADMINISTER, None, True),
        (ADMIN, REGISTER, "t1.peer-value", True),
        (REVIEWER, REGISTER, "t1.hub.match.decisions-value", True),
        (REVIEWER, READ, "t1.hub.match.decisions-value", True),
        (REVIEWER, REGISTER, AUDIT_SUBJECT, False),
        (REVIEWER, REGISTER, "t1.hub.match.review-value", False),
        (REVIEWER, REGISTER, OWN, False),
    ],
)
def test_who_may_do_what(principal, action, subject, allowed):
    assert may(principal, action, subject) is allowed


def test_only_the_hubs_services_and_admin_read_everything():
    assert {
        p for p in (ADMIN, WORKER, GATEWAY, CONSOLE, AUDIT, LOTHIAN) if access.reads_everything(p)
    } == {
        ADMIN,
        WORKER,
        GATEWAY,
        CONSOLE,
        AUDIT,
    }


@pytest.fixture
def settings(tmp_path):
    return Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")


def test_users_are_stored_as_scrypt_hashes_0600(settings):
    users.set_user(settings, LOTHIAN, "s3cret-value")
    text = settings.registry_users_path.read_text()
    assert "s3cret-value" not in text and '"scrypt"' in text
    assert stat.S_IMODE(settings.registry_users_path.stat().st_mode) == 0o600
    store = users.UserStore(settings.registry_users_path)
    assert store.verify(LOTHIAN, "s3cret-value")
    assert store.verify(LOTHIAN, "s3cret-value")  # the cached path
    assert not store.verify(LOTHIAN, "wrong")
    assert not store.verify(FIFE, "s3cret-value")


def test_rotation_and_removal_take_effect_on_the_next_check(settings):
    users.set_user(settings, LOTHIAN, "first")
    store = users.UserStore(settings.registry_users_path)
    assert store.verify(LOTHIAN, "first")
    users.set_user(settings, LOTHIAN, "second")
    assert not store.verify(LOTHIAN, "first") and store.verify(LOTHIAN, "second")
    assert users.remove_user(settings, LOTHIAN) and not users.remove_user(settings, LOTHIAN)
    assert not store.verify(LOTHIAN, "second")


def test_provisioning_saves_a_credential_that_signs_in(settings):
    from accord.core.credentials import held_credential

    users.provision_organisations(settings, [LOTHIAN])
    credential = held_credential(settings, LOTHIAN)
    assert users.UserStore(settings.registry_users_path).verify(
        LOTHIAN, credential.secret.get_secret_value()
    )
