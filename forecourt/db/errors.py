"""Recognising constraint violations so services can turn races into clear domain errors."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError


def violates(err: IntegrityError, constraint: str) -> bool:
    orig = getattr(err, "orig", None)
    name = getattr(orig, "constraint_name", None) or getattr(
        getattr(orig, "__cause__", None), "constraint_name", None
    )
    return name == constraint or constraint in str(err)
