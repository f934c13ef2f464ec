"""RFC 3339 §5.6 date-times: the parser's table, and deadline on both faces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from aptools.testing import FakeIdentity
from aptools.times import format_datetime, isoformat, parse_datetime, timestamp_of

from .conftest import MakeClient

GOOD = {"input_string": "hello"}

VALID = [
    ("2026-11-30T20:58:34Z", datetime(2026, 11, 30, 20, 58, 34, tzinfo=UTC)),
    ("2026-11-30t20:58:34z", datetime(2026, 11, 30, 20, 58, 34, tzinfo=UTC)),
    ("2026-11-30T20:58:34+00:00", datetime(2026, 11, 30, 20, 58, 34, tzinfo=UTC)),
    ("2026-11-30T20:58:34-00:00", datetime(2026, 11, 30, 20, 58, 34, tzinfo=UTC)),
    (
        "2026-11-30T20:58:34+05:30",
        datetime(2026, 11, 30, 15, 28, 34, tzinfo=UTC),
    ),
    (
        "2026-11-30T20:58:34-23:59",
        datetime(2026, 12, 1, 20, 57, 34, tzinfo=UTC),
    ),
    ("2026-11-30T20:58:34.5Z", datetime(2026, 11, 30, 20, 58, 34, 500000, UTC)),
    ("2026-11-30T20:58:34.123456Z", datetime(2026, 11, 30, 20, 58, 34, 123456, UTC)),
    (  # any length of fraction; cut, never rounded into the next second
        "2026-11-30T20:58:34.9999999999Z",
        datetime(2026, 11, 30, 20, 58, 34, 999999, UTC),
    ),
    ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
    ("2000-02-29T00:00:00Z", datetime(2000, 2, 29, tzinfo=UTC)),
    (  # leap seconds: the instant of the next midnight, as POSIX counts
        "2016-12-31T23:59:60Z",
        datetime(2017, 1, 1, tzinfo=UTC),
    ),
    ("1990-12-31T15:59:60-08:00", datetime(1991, 1, 1, tzinfo=UTC)),
    ("2015-06-30T23:59:60.5Z", datetime(2015, 7, 1, 0, 0, 0, 500000, UTC)),
    ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
    ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
]

INVALID = [
    "20261130T205834Z",  # ISO 8601 basic form
    "2026-11-30T205834Z",
    "2026-W49-1T20:58:34Z",  # week date
    "2026-334T20:58:34Z",  # ordinal date
    "2026-11-30T20:58Z",  # no seconds
    "2026-11-30T20Z",
    "2026-11-30",  # no time
    "2026-11-30T20:58:34",  # no offset
    "2026-11-30T20:58:34+0000",  # offset without colon
    "2026-11-30T20:58:34+00",  # offset without minutes
    "2026-11-30T20:58:34 +00:00",
    "2026-11-30 20:58:34Z",  # a space for T: not in the §5.6 grammar
    "2026-11-30_20:58:34Z",
    "2026-11-3020:58:34Z",
    "2026-11-30T20:58:34.Z",  # a point without digits
    "2026-11-30T20:58:34,5Z",  # a comma for the point
    "2026-11-30T24:00:00Z",
    "2026-11-30T20:60:00Z",
    "2026-11-30T20:58:61Z",
    "2026-11-30T20:58:60Z",  # leap second not at the end of a month
    "2016-12-30T23:59:60Z",  # ... nor at the end of another day
    "2016-12-31T23:59:60+01:00",  # 22:59:60 in UTC
    "2026-02-29T00:00:00Z",  # no such day
    "1900-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-00-01T00:00:00Z",
    "2026-11-00T00:00:00Z",
    "2026-11-30T20:58:34+24:00",  # no such offset
    "2026-11-30T20:58:34+05:60",
    "0000-01-01T00:00:00Z",  # datetime cannot hold year 0
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
    "+2026-11-30T20:58:34Z",  # expanded years
    "12026-11-30T20:58:34Z",
    "26-11-30T20:58:34Z",
    "2026-1-30T20:58:34Z",
    "٢٠٢٦-11-30T20:58:34Z",  # Arabic-Indic digits
    "2026-11-30T20:58:34Z\n",
    " 2026-11-30T20:58:34Z",
    "",
    "tomorrow",
]


@pytest.mark.parametrize("text, moment", VALID)
def test_every_form_rfc3339_allows(text: str, moment: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed.tzinfo is not None
    assert parsed == moment


@pytest.mark.parametrize("text", INVALID)
def test_nothing_rfc3339_does_not_allow(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_datetime(text)
    if len(text) > 2:
        assert text.strip() not in str(raised.value)  # the value is not quoted


def test_the_offset_is_kept() -> None:
    parsed = parse_datetime("2026-11-30T20:58:34+05:30")
    assert parsed.utcoffset() == timedelta(hours=5, minutes=30)


def test_formatting_is_rfc3339_in_utc() -> None:
    moment = datetime(2026, 11, 30, 20, 58, 34, 5, timezone(timedelta(hours=-2)))
    text = format_datetime(moment)
    assert text == "2026-11-30T22:58:34.000005+00:00"
    assert parse_datetime(text) == moment
    with pytest.raises(ValueError):
        format_datetime(datetime(2026, 11, 30))
    stamp = 1_795_000_000.25
    assert parse_datetime(isoformat(stamp)).timestamp() == stamp
    assert timestamp_of(isoformat(stamp)) == stamp


@pytest.mark.parametrize("text", INVALID[:22])
def test_a_deadline_is_strict_rfc3339(
    make: MakeClient, alice: FakeIdentity, text: str
) -> None:
    _, client = make()
    result = client.run(alice, GOOD, deadline=text)
    assert result.status_code == 400
    assert result.json["code"] == "RequestValidationError"
    assert result.json["description"].startswith("$.deadline: ")
    assert result.json["description"].endswith("(rule 'format')")


@pytest.mark.parametrize(
    "shift, form",
    [
        (timedelta(hours=1), "%Y-%m-%dT%H:%M:%SZ"),
        (timedelta(hours=1), "%Y-%m-%dt%H:%M:%Sz"),
        (timedelta(hours=1), "%Y-%m-%dT%H:%M:%S.123456789+05:30"),
        (timedelta(hours=1), "%Y-%m-%dT%H:%M:%S-00:00"),
    ],
)
def test_every_rfc3339_deadline_form_is_taken(
    make: MakeClient, alice: FakeIdentity, shift: timedelta, form: str
) -> None:
    _, client = make()
    when = datetime.now(UTC) + shift
    if "+05:30" in form:
        when = when.astimezone(timezone(timedelta(hours=5, minutes=30)))
    result = client.run(alice, GOOD, deadline=when.strftime(form))
    assert result.status_code == 202, result.text
    status = client.call("GET", f"/actions/{result.json['action_id']}", alice)
    assert status.status_code == 200
