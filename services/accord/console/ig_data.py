"""What the IG officers' pages show, as pure functions: agreement summaries and their
warnings, decisions over time from the audit index, the decisions chart (inline SVG drawn
here, no script), and the who-received form's CHI handling.

Nothing here reads Kafka or OPA: the routes in `accord.console.ig` bring the agreements
(from the policies folder the hub's OPA serves) and an audit index connection
(`accord.governance.audit_index`), so every function is unit-tested on its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from markupsafe import Markup, escape

from accord.governance.audit_index import WITHDRAWN, split
from accord.governance.meaning import REVIEW_WARNING_DAYS

EXPIRY_WARNING_DAYS: Final = 30
# The chart's colours are the GOV.UK palette's, each at least 3:1 against white.
SHARED_COLOUR: Final = "#00703c"  # green
WITHHELD_COLOUR: Final = "#d4351c"  # red
WITHDRAWN_COLOUR: Final = "#0b0c0c"  # black
STATUS_TAGS: Final = {
    "active": "govuk-tag--green",
    "suspended": "govuk-tag--red",
    "draft": "govuk-tag--grey",
    "expired": "govuk-tag--orange",
}


# --- agreements -------------------------------------------------------------------------


@dataclass(frozen=True)
class Warning:
    """Something an IG officer must act on; `kind` is review or expiry."""

    kind: str
    message: str


@dataclass(frozen=True)
class Clause:
    number: str
    topic: str
    text: str


@dataclass
class AgreementSummary:
    id: str
    title: str
    status: str
    status_reason: str
    version: int | None
    type: str
    providers: list[str]
    recipients: list[str]
    purposes: list[str]
    lawful_basis: list[tuple[str, str]]
    valid_from: str
    valid_until: str
    review_date: str
    retention: str
    clauses: list[Clause]
    plain_words: list[str]
    warnings: list[Warning] = field(default_factory=list)

    @property
    def status_tag(self) -> str:
        return STATUS_TAGS.get(self.status, "govuk-tag--grey")


LAWFUL_BASIS_LABELS: Final = {
    "article_6": "UK GDPR Article 6",
    "article_9": "UK GDPR Article 9 (health data)",
    "dpa_2018_schedule_1": "Data Protection Act 2018, Schedule 1",
}


def _day(value: Any) -> date | None:
    """The date of an ISO date or timestamp, None when unreadable or missing."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def warnings_of(agreement: Mapping[str, Any], today: date) -> list[Warning]:
    """Past its review date or due within REVIEW_WARNING_DAYS; expiring (valid_until)
    within EXPIRY_WARNING_DAYS, or past it while still marked active. An expired
    agreement needs neither: nothing is shared under it."""
    if agreement.get("status") == "expired":
        return []
    found: list[Warning] = []
    review = _day(agreement.get("review_date"))
    if review is not None:
        days = (review - today).days
        if days < 0:
            found.append(
                Warning(
                    "review",
                    f"The review date {review:%-d %B %Y} has passed ({_plural(-days, 'day')} "
                    "ago). Review the agreement and record the next review date.",
                )
            )
        elif days <= REVIEW_WARNING_DAYS:
            when = "today" if days == 0 else f"in {_plural(days, 'day')}"
            found.append(Warning("review", f"The review is due {when} ({review:%-d %B %Y})."))
    until = _day(agreement.get("valid_until"))
    if until is not None:
        days = (until - today).days
        if days < 0:
            found.append(
                Warning(
                    "expiry",
                    f"The agreement ended on {until:%-d %B %Y}: the policy treats it as "
                    "expired and shares nothing under it. Renew it or mark it expired.",
                )
            )
        elif days <= EXPIRY_WARNING_DAYS:
            when = "today" if days == 0 else f"in {_plural(days, 'day')}"
            found.append(
                Warning(
                    "expiry",
                    f"The agreement expires {when} ({until:%-d %B %Y}). Renew it before then "
                    "or sharing stops.",
                )
            )
    return found


def words(name: str) -> str:
    """A field or dataset name in words: `address_line1` -> "address line 1"."""
    text = name.replace("_", " ").replace("-", " ")
    out = []
    for part in text.split():
        head = part.rstrip("0123456789")
        out.extend([head, part[len(head) :]] if head and head != part else [part])
    return " ".join(out)


def _listing(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _clause_key(number: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in str(number).split("."))


def plain_words(agreement: Mapping[str, Any]) -> list[str]:
    """What the agreement lets happen, one sentence each, from its data (the clauses'
    own texts are shown beside these)."""
    providers = _listing([str(p) for p in agreement.get("providers") or ()]) or "No provider"
    recipients = agreement.get("recipients") or []
    sentences = []
    for name, spec in sorted((agreement.get("datasets") or {}).items()):
        if not isinstance(spec, Mapping):
            continue
        fields = [words(f) for f in spec.get("fields") or () if isinstance(f, str)]
        derived = [words(f) for f in spec.get("derived") or () if isinstance(f, str)]
        default_to = [
            str(r.get("org"))
            for r in recipients
            if isinstance(r, Mapping) and r.get("org") not in (spec.get("recipient_fields") or {})
        ]
        if default_to:
            shared = _listing(fields + derived) or "nothing"
            sentences.append(
                f"{providers} share {shared} from the {words(name)} with {_listing(default_to)}."
            )
        for org, own in sorted((spec.get("recipient_fields") or {}).items()):
            listed = [words(f) for f in own or () if isinstance(f, str)]
            sentences.append(
                f"{providers} share {_listing(listed + derived) or 'nothing'} from the "
                f"{words(name)} with {org}."
            )
        masked = sorted(spec.get("mask") or {})
        if masked:
            sentences.append(f"These are masked before sharing: {_listing(masked)}.")
    purposes = [words(p) for p in agreement.get("purposes") or ()]
    if purposes:
        sentences.append(f"Only for {_listing(purposes)}.")
    if (agreement.get("conditions") or {}).get("resident_in_recipient_area"):
        sentences.append("Only people who live in the recipient's council area are shared.")
    children = agreement.get("children") or {}
    if isinstance(children, Mapping) and "permitted" in children:
        sentences.append(
            "Records of children may be shared."
            if children.get("permitted")
            else "Records of children (under 18) are never shared."
        )
    retention = agreement.get("retention") or {}
    if isinstance(retention, Mapping) and retention.get("days"):
        then = retention.get("then") or "delete"
        verb = "deleted" if then == "delete" else f"{then}d"
        sentences.append(
            f"Recipients keep what they receive for at most "
            f"{_plural(int(retention['days']), 'day')}, then it is {verb}."
        )
    return sentences


def _when(value: Any) -> str:
    day = _day(value)
    return f"{day:%-d %B %Y}" if day else ("" if value is None else str(value))


def summarise(agreement_id: str, agreement: Mapping[str, Any], today: date) -> AgreementSummary:
    """One agreement as its page shows it."""
    recipients = []
    for r in agreement.get("recipients") or ():
        if not isinstance(r, Mapping):
            continue
        areas = [r.get("council_area")] if r.get("council_area") else r.get("council_areas") or []
        kind = str(r.get("kind") or "")
        where = f", {_listing([str(a) for a in areas])}" if areas else ""
        recipients.append(f"{r.get('org')} ({kind}{where})")
    clauses = [
        Clause(str(number), str(c.get("topic", "")), str(c.get("text", "")))
        for number, c in sorted(
            (agreement.get("clauses") or {}).items(), key=lambda item: _clause_key(item[0])
        )
        if isinstance(c, Mapping)
    ]
    basis = [
        (LAWFUL_BASIS_LABELS.get(k, words(k)), str(v))
        for k, v in (agreement.get("lawful_basis") or {}).items()
    ]
    retention = agreement.get("retention") or {}
    kept = (
        f"{_plural(int(retention['days']), 'day')}, then {retention.get('then', 'delete')}"
        if isinstance(retention, Mapping) and retention.get("days")
        else ""
    )
    version = agreement.get("version")
    return AgreementSummary(
        id=agreement_id,
        title=str(agreement.get("title") or agreement_id),
        status=str(agreement.get("status") or "draft"),
        status_reason=str(agreement.get("status_reason") or ""),
        version=version if isinstance(version, int) else None,
        type=str(agreement.get("type") or "standard"),
        providers=[str(p) for p in agreement.get("providers") or ()],
        recipients=recipients,
        purposes=[str(p) for p in agreement.get("purposes") or ()],
        lawful_basis=basis,
        valid_from=_when(agreement.get("valid_from")),
        valid_until=_when(agreement.get("valid_until")),
        review_date=_when(agreement.get("review_date")),
        retention=kept,
        clauses=clauses,
        plain_words=plain_words(agreement),
        warnings=warnings_of(agreement, today),
    )


def summaries(agreements: Mapping[str, Any], today: date) -> list[AgreementSummary]:
    """Every agreement (as OPA loads them, by id), in id order."""
    return [
        summarise(key, value, today)
        for key, value in sorted(agreements.items())
        if isinstance(value, Mapping)
    ]


def recipients_of(agreement: Mapping[str, Any]) -> list[str]:
    return [
        str(r["org"])
        for r in agreement.get("recipients") or ()
        if isinstance(r, Mapping) and isinstance(r.get("org"), str)
    ]


# --- decisions over time ----------------------------------------------------------------

BUCKETS: Final = (
    (timedelta(minutes=1), "minute"),
    (timedelta(minutes=10), "10 minutes"),
    (timedelta(hours=1), "hour"),
    (timedelta(days=1), "day"),
)
MAX_BARS: Final = 60


@dataclass(frozen=True)
class Bucket:
    start: datetime
    shared: int = 0
    withheld: int = 0
    withdrawn: int = 0

    @property
    def total(self) -> int:
        return self.shared + self.withheld + self.withdrawn


@dataclass
class Series:
    """Decisions of one agreement per time bucket, oldest first, gaps filled with zeros."""

    agreement_id: str
    width: timedelta
    unit: str
    buckets: list[Bucket]

    @property
    def totals(self) -> tuple[int, int, int]:
        return (
            sum(b.shared for b in self.buckets),
            sum(b.withheld for b in self.buckets),
            sum(b.withdrawn for b in self.buckets),
        )


def choose_bucket(first: datetime, last: datetime) -> tuple[timedelta, str]:
    """The smallest bucket that shows the span in at most MAX_BARS bars."""
    span = last - first
    for width, unit in BUCKETS:
        if span < width * MAX_BARS:
            return width, unit
    return BUCKETS[-1]


def decision_series(
    db: sqlite3.Connection, agreement_id: str, since: datetime, until: datetime | None = None
) -> Series:
    """Shared, withheld and withdrawn decisions under `agreement_id` from `since`, bucketed
    by choose_bucket over the span actually decided (at most MAX_BARS buckets; the
    oldest are dropped beyond that)."""
    since_ms = int(since.timestamp() * 1000)
    first, last = db.execute(
        "SELECT MIN(decided_at), MAX(decided_at) FROM decisions "
        "WHERE agreement_id = ? AND decided_at >= ?",
        (agreement_id, since_ms),
    ).fetchone()
    if first is None:
        return Series(agreement_id, BUCKETS[-1][0], BUCKETS[-1][1], [])
    end = until or datetime.fromtimestamp(last / 1000, UTC)
    start = datetime.fromtimestamp(first / 1000, UTC)
    width, unit = choose_bucket(start, end)
    step = int(width.total_seconds() * 1000)
    counts: dict[int, list[int]] = {}
    for slot, allow, withdrawn, count in db.execute(
        f"SELECT decided_at / ?, allow, allow = 0 AND {WITHDRAWN}, COUNT(*) FROM decisions "
        "WHERE agreement_id = ? AND decided_at >= ? GROUP BY 1, 2, 3",
        (step, agreement_id, since_ms),
    ):
        row = counts.setdefault(int(slot), [0, 0, 0])
        row[0 if allow else 2 if withdrawn else 1] += count
    last_slot = max(max(counts), int(end.timestamp() * 1000) // step)
    first_slot = max(min(counts), last_slot - MAX_BARS + 1)
    buckets = [
        Bucket(datetime.fromtimestamp(slot * step / 1000, UTC), *counts.get(slot, (0, 0, 0)))
        for slot in range(first_slot, last_slot + 1)
    ]
    return Series(agreement_id, width, unit, buckets)


@dataclass(frozen=True)
class Ranked:
    label: str
    count: int


def deny_reasons(
    db: sqlite3.Connection, since: datetime, agreement_id: str | None = None, limit: int = 10
) -> tuple[list[Ranked], list[Ranked], list[Ranked]]:
    """(reasons, clauses, principles) of denials (withdrawals apart) since a time, most
    frequent first; clauses as "DSA-015 clause 4.1". For one agreement, or all."""
    where = "allow = 0 AND NOT " + WITHDRAWN + " AND decided_at >= ?"
    params: list[Any] = [int(since.timestamp() * 1000)]
    if agreement_id is not None:
        where += " AND agreement_id = ?"
        params.append(agreement_id)
    reasons: dict[str, int] = {}
    clauses: dict[str, int] = {}
    principles: dict[str, int] = {}
    for agreement, reason_list, clause_list, principle_list, count in db.execute(
        "SELECT agreement_id, reasons, clauses, principles, COUNT(*) FROM decisions "
        f"WHERE {where} GROUP BY 1, 2, 3, 4",
        params,
    ):
        for reason in split(reason_list)[:1]:  # the first reason is the deny's own
            reasons[reason] = reasons.get(reason, 0) + count
        for clause in split(clause_list):
            label = f"{agreement} clause {clause}" if agreement else f"clause {clause}"
            clauses[label] = clauses.get(label, 0) + count
        for principle in split(principle_list):
            principles[principle] = principles.get(principle, 0) + count

    def ranked(counts: dict[str, int]) -> list[Ranked]:
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return [Ranked(label, count) for label, count in ordered[:limit]]

    return ranked(reasons), ranked(clauses), ranked(principles)


@dataclass(frozen=True)
class RecipientCounts:
    recipient: str
    shared: int
    withheld: int
    withdrawn: int
    fields: list[Ranked]


def recipient_counts(
    db: sqlite3.Connection, since: datetime, agreement_id: str | None = None
) -> list[RecipientCounts]:
    """Decisions by recipient (shared, withheld, withdrawn) and releases by field since a
    time, for one agreement or all; no-agreement denies are counted under "(none)"."""
    where = "decided_at >= ?"
    params: list[Any] = [int(since.timestamp() * 1000)]
    if agreement_id is not None:
        where += " AND agreement_id = ?"
        params.append(agreement_id)
    counts: dict[str, list[int]] = {}
    for recipient, allow, withdrawn, count in db.execute(
        f"SELECT recipient, allow, allow = 0 AND {WITHDRAWN}, COUNT(*) FROM decisions "
        f"WHERE {where} GROUP BY 1, 2, 3",
        params,
    ):
        row = counts.setdefault(recipient or "(none)", [0, 0, 0])
        row[0 if allow else 2 if withdrawn else 1] += count
    fields: dict[str, dict[str, int]] = {}
    for recipient, released, count in db.execute(
        f"SELECT recipient, fields_released, COUNT(*) FROM decisions WHERE {where} "
        "AND allow = 1 GROUP BY 1, 2",
        params,
    ):
        per = fields.setdefault(recipient or "(none)", {})
        for name in split(released):
            per[name] = per.get(name, 0) + count
    return [
        RecipientCounts(
            recipient,
            *row,
            [
                Ranked(n, c)
                for n, c in sorted(fields.get(recipient, {}).items(), key=lambda i: (-i[1], i[0]))
            ],
        )
        for recipient, row in sorted(counts.items())
    ]


def _nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 x 10^n at or above `value` (at least 1)."""
    if value <= 1:
        return 1
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def _label(moment: datetime, width: timedelta) -> str:
    return f"{moment:%-d %b}" if width >= timedelta(days=1) else f"{moment:%H:%M}"


def chart_svg(series: Series, width: int = 720, height: int = 240) -> Markup:
    """A stacked bar chart of `series` as inline SVG: presentation attributes only (the
    console's CSP allows no inline style), a title and description for screen readers,
    and a tooltip (`<title>`) per bar. Every value is escaped."""
    left, right, top, bottom = 48, 8, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    title_id = f"chart-{escape(series.agreement_id)}-title"
    shared, withheld, withdrawn = series.totals
    desc = (
        f"Decisions under {series.agreement_id} per {series.unit}: {shared} shared, "
        f"{withheld} withheld, {withdrawn} withdrawn."
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="app-chart" role="img" '
        'font-family="arial, sans-serif" '
        f'viewBox="0 0 {width} {height}" width="100%" aria-labelledby="{title_id}">',
        f'<title id="{title_id}">{escape(desc)}</title>',
    ]
    if not series.buckets:
        parts.append(
            f'<text x="{width // 2}" y="{height // 2}" text-anchor="middle" '
            f'font-size="16" fill="#505a5f">No decisions in this period</text></svg>'
        )
        return Markup("".join(parts))
    peak = _nice_ceiling(max(b.total for b in series.buckets))
    slot = plot_w / len(series.buckets)
    bar = max(1.0, slot * 0.8)
    # axes and gridlines at 0, half and the top
    for fraction in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - fraction)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#b1b4b6" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="12" '
            f'fill="#0b0c0c">{int(peak * fraction)}</text>'
        )
    for i, b in enumerate(series.buckets):
        x = left + i * slot + (slot - bar) / 2
        y = top + plot_h
        tip = (
            f"{b.start:%Y-%m-%d %H:%M} UTC: {b.shared} shared, {b.withheld} withheld, "
            f"{b.withdrawn} withdrawn"
        )
        parts.append(f"<g><title>{escape(tip)}</title>")
        for value, colour in (
            (b.shared, SHARED_COLOUR),
            (b.withheld, WITHHELD_COLOUR),
            (b.withdrawn, WITHDRAWN_COLOUR),
        ):
            if value <= 0:
                continue
            h = plot_h * value / peak
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"/>'
            )
        parts.append("</g>")
    label_every = max(1, len(series.buckets) // 6)
    for i in range(0, len(series.buckets), label_every):
        x = left + i * slot + slot / 2
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 18}" text-anchor="middle" font-size="12" '
            f'fill="#0b0c0c">{escape(_label(series.buckets[i].start, series.width))}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w}" y="{height - 2}" text-anchor="end" font-size="12" '
        f'fill="#505a5f">one bar per {escape(series.unit)}, UTC</text></svg>'
    )
    return Markup("".join(parts))


# --- who-received -----------------------------------------------------------------------

CHI_FIELD_LIMIT: Final = 64  # far longer than any way of writing a CHI


def chi_key(settings: Any, given: str | None) -> tuple[str, None] | tuple[None, str]:
    """(the pseudonymous key of the CHI typed into the form, None), or (None, why it is
    not a CHI number). The number is validated and hashed here, first; no message quotes
    it, and the caller drops it at once."""
    from accord.core.pseudonym import person_key
    from accord.ingest.validation import RowInvalid, validate_chi

    text = (given or "").strip()
    if not text:
        return None, "Enter the person's CHI number"
    if len(text) > CHI_FIELD_LIMIT:
        return None, "Enter a CHI number: 10 digits, for example 010190 1234"
    try:
        digits = validate_chi(text)
    except RowInvalid as exc:
        return None, f"That is not a valid CHI number: {exc.errors[0].message}"
    return person_key(settings.require_pseudonym_key(), digits), None
