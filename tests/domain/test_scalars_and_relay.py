import uuid

import pytest

from forecourt.db.models import KycApplication
from forecourt.db.pagination import decode_cursor, encode_cursor, page_size
from forecourt.domain.errors import DomainError
from forecourt.schema.relay import from_global_id, to_global_id
from forecourt.schema.scalars import parse_money, serialize_money


@pytest.mark.parametrize("raw,expected", [("1250000.00", "1250000.00"), ("5", "5.00"), (7, "7.00"), ("-3.5", "-3.50")])
def test_money_parses_decimal_strings(raw, expected):
    assert serialize_money(parse_money(raw)) == expected


@pytest.mark.parametrize("raw", [1.5, True, "abc", "NaN", "Infinity", "1.234", "1e20", "9" * 40, None])
def test_money_rejects_floats_and_garbage(raw):
    with pytest.raises(ValueError):
        parse_money(raw)


def test_global_ids_round_trip_and_check_type():
    raw = uuid.uuid4()
    gid = to_global_id("User", raw)
    assert from_global_id(gid) == ("User", raw)
    with pytest.raises(DomainError) as exc:
        from_global_id(gid, "Vehicle")
    assert exc.value.code == "INVALID_ID"
    for bad in ("", "!!!", "VXNlcjpub3QtYS11dWlk", "x" * 500):
        with pytest.raises(DomainError):
            from_global_id(bad)


def test_cursor_round_trip_and_tamper():
    from datetime import UTC, datetime

    key = (datetime(2026, 1, 2, tzinfo=UTC), uuid.uuid4())
    cols = [KycApplication.created_at, KycApplication.id]
    assert decode_cursor(encode_cursor(key), cols) == key
    with pytest.raises(DomainError) as exc:
        decode_cursor("garbage", cols)
    assert exc.value.code == "INVALID_CURSOR"


def test_page_size_cap():
    assert page_size(None, 20, 100) == 20
    assert page_size(100, 20, 100) == 100
    with pytest.raises(DomainError) as exc:
        page_size(101, 20, 100)
    assert exc.value.code == "PAGE_SIZE_TOO_LARGE"
    with pytest.raises(DomainError):
        page_size(-1, 20, 100)
