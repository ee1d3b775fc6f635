"""Property-based tests: arbitrary bytes and text never crash the decoders or validators;
they either decode or fail with the project's own clear errors."""

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.core.errors import SchemaError
from accord.core.serde import AvroSerde, frame
from accord.ingest.pipeline import Accepted, Location, Pipeline, Rejected
from accord.ingest.validation import REQUIRED_COLUMNS, RowInvalid, validate_shielding_row

from .test_serde import FakeRegistry, shielding_event

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "avro"
COLUMNS = sorted(REQUIRED_COLUMNS)
SERDE = AvroSerde(FakeRegistry(), SCHEMAS)
GOOD = SERDE.encode("s-value", "ShieldingListEntry", shielding_event())


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_a_schema_error(data):
    try:
        SERDE.decode(data)
    except SchemaError:
        pass  # WireFormatError is one; unknown schema ids are too


@settings(max_examples=300)
@given(st.integers(min_value=0, max_value=len(GOOD) - 1), st.binary(max_size=8))
def test_truncated_or_corrupted_frames_never_crash(cut, tail):
    try:
        SERDE.decode(GOOD[:cut] + tail)
    except SchemaError:
        pass


@given(st.integers(min_value=2, max_value=2**31 - 1))
def test_an_unknown_schema_id_is_a_schema_error(schema_id):
    try:
        SERDE.decode(frame(schema_id, GOOD[5:]))
    except SchemaError as exc:
        assert str(schema_id) in str(exc)


row_text = st.one_of(
    st.none(), st.text(max_size=40), st.sampled_from(['=HYPERLINK("x")', "+1", "\x00"])
)


@settings(max_examples=300)
@given(st.fixed_dictionaries({name: row_text for name in COLUMNS}))
def test_any_row_is_valid_or_invalid_with_reasons(row):
    try:
        validate_shielding_row(row)
    except RowInvalid as exc:
        assert exc.errors and all(error.message for error in exc.errors)


@settings(max_examples=200)
@given(st.dictionaries(st.text(max_size=20), row_text, max_size=12))
def test_the_pipeline_accepts_or_rejects_any_record(raw):
    for dataset in ("shielding-list", "support-request", "support-outcome", "consent-change"):
        outcome = Pipeline("city-of-edinburgh", dataset).process(
            raw, Location("HTTP", "batch record 1", "record 1"), b"{}"
        )
        assert isinstance(outcome, Accepted | Rejected)
        if isinstance(outcome, Rejected):
            assert outcome.reason
