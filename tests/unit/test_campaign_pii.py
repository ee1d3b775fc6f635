"""The PII campaign's scanner, without the stack: each kind of identifier is found in the
forms logs and records write it, as whole words only, and nothing else is."""

from __future__ import annotations

from accord.campaign.pii import Needles, Report, phone_key

NEEDLES = Needles()
NEEDLES.add(
    {
        "chi_number": "0101501234",
        "given_name": "Siobhán",
        "family_name": "Hamilton-Smith",
        "contact_phone": "+44 (0)131 496 0123",
        "postcode": "EH1 1AA",
    }
)


def test_each_kind_is_found_however_it_is_written() -> None:
    assert NEEDLES.hits('{"chi": "0101501234"}') == {"chi": 1}
    assert NEEDLES.hits("SIOBHÁN smith") == {"name": 2}
    assert NEEDLES.hits("call 01314960123 or +441314960123 or 0131 496 0123") == {"phone": 3}
    assert NEEDLES.hits("eh11aa / EH1 1AA") == {"postcode": 2}


def test_only_whole_words_and_whole_numbers() -> None:
    assert not NEEDLES.hits("Smithfield x_smith_1 blacksmith")
    assert not NEEDLES.hits("offset 10101501234 and 010150123")
    assert not NEEDLES.hits("EH11AAB")
    assert NEEDLES.hits("Smith", kinds=("chi",)) == {}


def test_phone_keys_ignore_how_the_number_is_written() -> None:
    assert phone_key("07700 900123") == phone_key("+447700900123") == "7700900123"
    assert phone_key("12345") is None


def test_controls_do_not_count_as_hits_but_are_required() -> None:
    report = Report(1, 1)
    report.place("control: rejects originals (may hold them)").hits["name"] = 3
    assert report.hits == 0 and report.control_hits == 3
    report.place("log lines").hits["chi"] = 1
    assert report.hits == 1 and not report.passed


def test_the_logs_scanned_are_the_processes_not_kafkas_segments(tmp_path):
    from accord.campaign.pii import log_files

    (tmp_path / "kafka" / "data" / "partner.x-0").mkdir(parents=True)
    (tmp_path / "kafka" / "data" / "partner.x-0" / "00000000000000000000.log").write_text("r")
    (tmp_path / "campaign" / "pii" / "logs").mkdir(parents=True)
    (tmp_path / "campaign" / "pii" / "logs" / "worker-0.log").write_text("{}")
    (tmp_path / "run.log").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in log_files(tmp_path)] == [
        "campaign/pii/logs/worker-0.log",
        "run.log",
    ]
