"""The rules' stamp: a digest of the rules' text, written into the rules themselves.

`policies/accord/revision/revision.rego` names (`rules := "sha256:..."`) the digest of
every other rule file's text (`accord.core.policy.rules_digest`; the `*_test.rego` files,
which OPA is never given, left out). The gate's query returns it with the decisions, so
a decision names its revision without reading the rules' half-megabyte syntax trees on
every batch; the worker checks it against the text OPA serves every few seconds and
falls back to reading the text when it is stale. `accord policy stamp` writes it, and
`accord policy test` (the policy tier of the tests) fails when it is stale, so rules that
passed the tests are stamped.
"""

from __future__ import annotations

import re
from pathlib import Path

from accord.core.policy import rules_digest

STAMP_FILE = Path("accord") / "revision" / "revision.rego"
_STAMP = re.compile(r'^rules := "(sha256:[0-9a-f]{64})"$', re.MULTILINE)


def rule_texts(policies_dir: Path) -> list[str]:
    """The text of every rule file OPA is given from `policies_dir` (tests left out)."""
    return [
        path.read_text(encoding="utf-8")
        for path in sorted(policies_dir.rglob("*.rego"))
        if not path.name.endswith("_test.rego")
    ]


def computed_stamp(policies_dir: Path) -> str:
    return rules_digest(rule_texts(policies_dir))


def written_stamp(policies_dir: Path) -> str | None:
    """The stamp revision.rego names, or None when there is no stamp file or line."""
    try:
        match = _STAMP.search((policies_dir / STAMP_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return match.group(1) if match else None


def stamp_problem(policies_dir: Path) -> str | None:
    """Why the stamp is wrong (one line), or None when it names the rules as they are."""
    written = written_stamp(policies_dir)
    if written is None:
        return f"no rules' stamp in {policies_dir / STAMP_FILE}"
    computed = computed_stamp(policies_dir)
    if written != computed:
        return (
            f"the rules changed since they were stamped ({written[:19]}..., the text is "
            f"{computed[:19]}...): run `accord policy stamp`"
        )
    return None


def write_stamp(policies_dir: Path) -> tuple[str, bool]:
    """Stamp the rules in `policies_dir`: (the stamp, whether the file changed)."""
    path = policies_dir / STAMP_FILE
    text = path.read_text(encoding="utf-8")
    if not _STAMP.search(text):
        raise ValueError(f'{path} has no `rules := "sha256:..."` line to stamp')
    stamp = computed_stamp(policies_dir)
    stamped = _STAMP.sub(f'rules := "{stamp}"', text, count=1)
    if stamped != text:
        path.write_text(stamped, encoding="utf-8")
    return stamp, stamped != text
