"""Channel names: one per aggregate."""

from __future__ import annotations

import uuid


def user_channel(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


def auction_channel(auction_id: uuid.UUID) -> str:
    return f"auction:{auction_id}"


def training_session_channel(session_id: uuid.UUID) -> str:
    return f"training-session:{session_id}"
