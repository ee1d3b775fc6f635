"""Text from data printed on a terminal can neither restyle it, inject control sequences,
reorder what is shown nor hide: `accord cases`, the demo's tables, the publish report."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from accord.core.terminal import REPLACEMENT, markup_safe, plain, printable

R = REPLACEMENT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Ann Kerr", "Ann Kerr"),
        ("Siobhán Ó Briain", "Siobhán Ó Briain"),
        ("[red]x", "[red]x"),  # markup is left to markup_safe / plain: printable is for text
        ("\x1b[2J\x1b[31mKerr", f"{R}[2J{R}[31mKerr"),  # ESC: clear screen, colour
        ("\x1b]0;owned\x07", f"{R}]0;owned{R}"),  # OSC: retitle the window, BEL
        ("Kerr\rSmith", f"Kerr{R}Smith"),  # carriage return overwrites
        ("Kerr\nSmith\t", f"Kerr{R}Smith{R}"),
        ("Ke\x08\x08rr", f"Ke{R}{R}rr"),  # backspaces
        ("\x9b31m", f"{R}31m"),  # C1 CSI
        ("\x7f", R),
        ("Kerr\u202e", f"Kerr{R}"),  # right-to-left override
        ("\u2066Kerr\u2069", f"{R}Kerr{R}"),  # isolates
        ("Ke\u200brr\u200d\ufeff", f"Ke{R}rr{R}{R}"),  # zero-width space, joiner, BOM
        ("Kerr\u2028Smith", f"Kerr{R}Smith"),  # line separator
        (None, ""),
        (12, "12"),
    ],
)
def test_printable_replaces_control_and_invisible_characters(value, expected):
    assert printable(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[red]x", "\\[red]x"),
        ("[bold red]Kerr[/]", "\\[bold red]Kerr\\[/]"),
        ("\x1b[31m", f"{R}[31m"),  # not a tag, so nothing to escape; ESC replaced
        ("plain", "plain"),
    ],
)
def test_markup_safe_escapes_tags(value, expected):
    assert markup_safe(value) == expected


def render(renderable) -> str:
    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system="truecolor", width=200).print(renderable)
    return out.getvalue()


HOSTILE = {
    "given_name": "[red]Ann",
    "family_name": "[link=https://example.org]Kerr[/link]",
    "address_line1": "\x1b[2J\x1b]0;owned\x07 1 High St",
    "postcode": "EH1 1AA\u202e",
    "contact_phone": ":warning: 0131",
    "priority": "URGENT",
    "needs": ["FOOD"],
    "latest_outcome": None,
    "priority_reasons": ["[blink]urgent"],
    "case_key": "k1",
    "agreement_id": "DSA-010",
    "fields_released": [
        "given_name",
        "family_name",
        "address_line1",
        "postcode",
        "contact_phone",
        "shielding_status",
    ],
    "is_shielding": True,
}


def assert_inert(text: str, reasons: bool = True) -> None:
    assert "[red]Ann" in text and "[link=https://example.org]Kerr[/link]" in text
    assert ":warning:" in text and (not reasons or "[blink]urgent" in text)
    assert "\x1b[2J" not in text and "\x1b]0;" not in text and "\x07" not in text
    assert "\u202e" not in text
    assert "\x1b[31m" not in text and "\x1b]8;" not in text and "\x1b[5m" not in text


def test_accord_cases_table_prints_data_as_text():
    from accord.coordinator.commands import case_table

    assert_inert(render(case_table("[red]City of Edinburgh: 1 open cases", [HOSTILE])))


def test_demo_sample_table_prints_data_as_text():
    from accord.demo.run import sample_table

    assert_inert(render(sample_table({"k1": HOSTILE})), reasons=False)


def test_plain_is_never_read_as_markup():
    assert "\x1b[" not in render(plain("[bold red]x[/]")).replace("\x1b[0m", "")
    assert "[bold red]x[/]" in render(plain("[bold red]x[/]"))


def test_publish_report_prints_column_headers_without_control_characters(tmp_path):
    from click.testing import CliRunner

    from accord.cli import main
    from accord.core.settings import get_settings

    from .test_ingest_files import ROW

    path = tmp_path / "list.csv"
    header = [*ROW, "\x1b[2Jnotes\u202e"]
    values = [*ROW.values(), "x"]
    path.write_text(",".join(header) + "\n" + ",".join(values) + "\n", encoding="utf-8")
    get_settings.cache_clear()
    result = CliRunner().invoke(
        main, ["publish", "--as", "nhs-lothian", "-d", "shielding-list", "--dry-run", str(path)]
    )
    assert "notes" in result.output
    assert "\x1b[2J" not in result.output and "\u202e" not in result.output
