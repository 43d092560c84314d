"""Rules for free text supplied by clients: length, control characters, normalisation."""

from __future__ import annotations

import re
import unicodedata

from forecourt.domain.errors import DomainError

# Tab, newline and carriage return are legitimate in multi-line text; the rest of C0/C1 and NUL
# (which PostgreSQL cannot store) are not.
# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F (one regex scan, not a
# per-character lookup: imports validate 10,000 rows at a time).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_MARKUP = re.compile("[<>{}]")


def clean_text(
    value: str | None,
    field: str,
    *,
    max_length: int,
    required: bool = False,
    multiline: bool = False,
    name: bool = False,
) -> str | None:
    """Normalise to NFC, strip, and reject control characters and over-long values.

    `name` marks a person's or business's name: markup characters have no place there and
    are refused rather than stored for some page to render.
    """
    if value is None:
        if required:
            raise DomainError("REQUIRED", f"{field} is required", (field,))
        return None
    if len(value) > max_length * 4:  # cheap early exit before normalising megabytes
        raise DomainError("TOO_LONG", f"{field} must be at most {max_length} characters", (field,))
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        if required:
            raise DomainError("REQUIRED", f"{field} is required", (field,))
        return None
    if len(value) > max_length:
        raise DomainError("TOO_LONG", f"{field} must be at most {max_length} characters", (field,))
    if name and _MARKUP.search(value):
        raise DomainError("INVALID_CHARACTERS", f"{field} must not contain < > or {{ }}", (field,))
    if (_CONTROL_MULTILINE if multiline else _CONTROL).search(value):
        raise DomainError(
            "INVALID_CHARACTERS", f"{field} contains control characters", (field,)
        )
    return value
