"""DomainError's field is always a path, however it is given."""

import pytest

from forecourt.domain.errors import DomainError, Validator


@pytest.mark.parametrize("field, path", [
    ("amount", ("amount",)),  # a lone name, not the letters a, m, o, u, n, t
    (("amount",), ("amount",)),
    (["documents", "0"], ("documents", "0")),
    (None, None),
    ((), None),
])
def test_field_is_a_path(field, path):
    assert DomainError("CODE", "message", field).field == path


def test_validator_fields_are_paths():
    v = Validator()
    v.add("REQUIRED", "x is required", "x")
    assert v.errors[0].field == ("x",)
