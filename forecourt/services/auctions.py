"""Auction use cases other than bidding: create, cancel, start, close, settle, and the settlement
deadline. Every write locks the auction row first, then wallets in user-id order, so jobs and
bids running in several processes neither deadlock nor act twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from forecourt.db.errors import violates
from forecourt.db.models import Auction, AuctionEvent, Vehicle
from forecourt.domain import auctions as rules
from forecourt.domain.auctions import (
    AuctionState,
    AuctionStatus,
    AuctionTerms,
    EventType,
    Standing,
)
from forecourt.domain.catalog import VehicleStatus
from forecourt.domain.errors import DomainError
from forecourt.domain.identity import STAFF_ROLES
from forecourt.domain.money import ZERO
from forecourt.domain.text import clean_text
from forecourt.domain.wallet import EntryType
from forecourt.services import Work, audit, wallet
from forecourt.subscriptions.channels import auction_channel
from forecourt.subscriptions.outbox import Outbox

A = Auction.__table__

# The auction as clients see it, carried in every event (never the leader's proxy maximum).
PUBLIC_COLUMNS = (
    "id", "vehicle_id", "seller_id", "status", "start_price", "reserve_price", "current_price",
    "bid_increment", "deposit_percent", "reserve_protection", "start_time", "end_time",
    "original_end_time", "bid_count", "bidder_count", "platform_bids", "sequence", "leader_id",
    "winner_id", "winning_amount", "settlement_deadline",
)
DECIMALS = {"start_price", "reserve_price", "current_price", "bid_increment", "deposit_percent", "winning_amount"}
TIMES = {"start_time", "end_time", "original_end_time", "settlement_deadline"}
IDS = {"id", "vehicle_id", "seller_id", "leader_id", "winner_id"}


def encode(row: dict[str, Any]) -> dict[str, Any]:
    """An auction row as JSON (decimals and times as strings)."""
    out: dict[str, Any] = {}
    for name in PUBLIC_COLUMNS:
        value = row[name]
        if value is None or isinstance(value, (bool, int)):
            out[name] = value
        elif name in TIMES:
            out[name] = value.isoformat()
        else:
            out[name] = str(value)  # decimals, ids
    return out


def decode(data: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `encode`."""
    out = dict(data)
    for name, value in data.items():
        if value is None:
            continue
        if name in DECIMALS:
            out[name] = Decimal(value)
        elif name in TIMES:
            out[name] = datetime.fromisoformat(value)
        elif name in IDS:
            out[name] = uuid.UUID(value)
    return out


STATE_FIELDS = (
    "id", "seller_id", "start_price", "reserve_price", "bid_increment", "deposit_percent",
    "start_time", "end_time", "current_price", "leader_id", "leader_max", "bid_count",
    "bidder_count", "platform_bids", "sequence", "reserve_protection",
)


def state_of(row: Mapping[str, Any]) -> AuctionState:
    return AuctionState(status=AuctionStatus(row["status"]), **{f: row[f] for f in STATE_FIELDS})


async def lock(session: AsyncSession, auction_id: uuid.UUID) -> Any:
    query = select(A).where(A.c.id == auction_id).with_for_update()
    return (await session.execute(query)).mappings().first()


def bid_json(bid: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(bid["id"]), "amount": str(bid["amount"]),
        "bidder_id": str(bid["bidder_id"]) if bid["bidder_id"] else None,
        "is_proxy": bid["is_proxy"], "is_platform_bid": bid["is_platform_bid"],
        "created_at": bid["created_at"].isoformat(), "position": bid["position"],
    }


def event_rows(auction_id: uuid.UUID, first_sequence: int,
               events: list[tuple[EventType, dict | None, dict[str, Any]]], now: datetime,
               outbox: Outbox) -> list[dict[str, Any]]:
    """Number events from `first_sequence`, queue them for publishing after commit, and return
    the rows of the auction's event log. Each event carries the auction as it was after it."""
    rows = []
    for offset, (kind, bid, auction) in enumerate(events):
        sequence = first_sequence + offset
        payload = {
            "type": kind.value, "sequence": sequence, "occurred_at": now.isoformat(),
            "bid": bid_json(bid) if bid else None, "auction": {**encode(auction), "sequence": sequence},
        }
        rows.append({"auction_id": auction_id, "sequence": sequence, "type": kind.value,
                     "bid_id": bid["id"] if bid else None, "occurred_at": now, "payload": payload})
        outbox.add(auction_channel(auction_id), payload)
    return rows


async def write_events(work: Work, before: Mapping[str, Any], after: dict[str, Any],
                       kinds: list[EventType]) -> None:
    rows = event_rows(after["id"], before["sequence"] + 1, [(k, None, after) for k in kinds],
                      work.now, work.events)
    await work.session.execute(AuctionEvent.__table__.insert(), rows)


async def save(session: AsyncSession, auction_id: uuid.UUID, **values: Any) -> dict[str, Any]:
    row = (await session.execute(
        update(A).where(A.c.id == auction_id).values(updated_at=func.now(), **values).returning(A)
    )).mappings().one()
    return dict(row)


async def set_vehicle_status(session: AsyncSession, vehicle_id: uuid.UUID, status: VehicleStatus,
                             now: datetime, event: str, auction_id: uuid.UUID) -> None:
    entry = {"at": now.isoformat(), "event": event, "status": status.value, "auction": str(auction_id)}
    await session.execute(
        update(Vehicle).where(Vehicle.id == vehicle_id).values(
            status=status.value, updated_at=func.now(),
            history=Vehicle.history.op("||")(func.jsonb_build_array(func.cast(entry, Vehicle.history.type))),
        )
    )


# ---------------------------------------------------------------- create and cancel


async def create(work: Work, vehicle_id: uuid.UUID, terms: AuctionTerms, reserve_protection: bool) -> dict[str, Any]:
    actor = work.actor
    assert actor is not None
    status = rules.validate_terms(terms, work.now)
    vehicle = (await work.session.execute(
        select(Vehicle.id, Vehicle.listed_by, Vehicle.status).where(Vehicle.id == vehicle_id).with_for_update()
    )).first()
    if vehicle is None:
        raise DomainError("NOT_FOUND", "No such vehicle", ("vehicleId",))
    if actor.role not in STAFF_ROLES and vehicle.listed_by != actor.user_id:
        raise DomainError("NOT_YOUR_VEHICLE", "You can only auction vehicles you listed", ("vehicleId",))
    if vehicle.status not in (VehicleStatus.AVAILABLE, VehicleStatus.LISTED):
        raise DomainError("VEHICLE_NOT_AVAILABLE",
                          f"The vehicle is {vehicle.status.replace('_', ' ')}, not available for auction",
                          ("vehicleId",))
    if reserve_protection and terms.reserve_price is None:
        raise DomainError("RESERVE_REQUIRED", "Reserve protection needs a reserve price", ("reservePrice",))
    previous = await work.session.scalar(
        select(A.c.id).where(A.c.vehicle_id == vehicle_id, A.c.status == AuctionStatus.UNSOLD.value)
        .order_by(A.c.created_at.desc()).limit(1).with_for_update()
    )
    if previous is not None:
        await save(work.session, previous, status=rules.transition(AuctionStatus.UNSOLD, AuctionStatus.RELISTED).value)
    auction_id = uuid.uuid4()
    try:
        async with work.session.begin_nested():
            await work.session.execute(A.insert().values(
                id=auction_id, vehicle_id=vehicle_id, seller_id=vehicle.listed_by, created_by=actor.user_id,
                status=status.value, start_price=terms.start_price, reserve_price=terms.reserve_price,
                bid_increment=terms.bid_increment, deposit_percent=rules.DEFAULT_DEPOSIT_PERCENT,
                reserve_protection=reserve_protection, start_time=terms.start_time,
                end_time=terms.end_time, original_end_time=terms.end_time, relisted_from=previous,
            ))
    except IntegrityError as err:
        if violates(err, "uq_auctions_active_vehicle"):
            raise DomainError("VEHICLE_IN_AUCTION", "This vehicle is already in an active auction",
                              ("vehicleId",)) from None
        raise
    await set_vehicle_status(
        work.session, vehicle_id, VehicleStatus.IN_AUCTION, work.now, "auction_created", auction_id
    )
    return dict((await work.session.execute(select(A).where(A.c.id == auction_id))).mappings().one())


async def cancel(work: Work, auction_id: uuid.UUID, reason: str) -> dict[str, Any]:
    """The seller may cancel before the first bid; managers and admins until it ends (audited)."""
    actor = work.actor
    assert actor is not None
    reason = clean_text(reason, "reason", max_length=500, required=True, multiline=True)
    row = await lock(work.session, auction_id)
    if row is None:
        raise DomainError("NOT_FOUND", "No such auction", ("auctionId",))
    staff = actor.role in STAFF_ROLES
    if not staff and row["seller_id"] != actor.user_id:
        raise DomainError("FORBIDDEN", "Only the seller or staff can cancel this auction")
    if not staff and row["bid_count"] > 0:
        raise DomainError("HAS_BIDS", "An auction with bids can only be cancelled by staff")
    rules.transition(AuctionStatus(row["status"]), AuctionStatus.CANCELLED)
    after = await save(work.session, auction_id, status=AuctionStatus.CANCELLED.value, cancel_reason=reason,
                       ended_at=work.now, leader_id=None, leader_max=None, sequence=row["sequence"] + 1)
    await write_events(work, row, after, [EventType.CANCELLED])
    await set_vehicle_status(work.session, row["vehicle_id"], VehicleStatus.AVAILABLE, work.now,
                             "auction_cancelled", auction_id)
    if staff:
        audit.record(work, "auction.cancel", target_type="auction", target_id=auction_id,
                     old={"status": row["status"]}, new={"status": "cancelled"}, reason=reason)
    return after


# ---------------------------------------------------------------- jobs: start, close, deadlines


async def start_due(work: Work) -> int:
    """Scheduled auctions whose start time has come go live."""
    result = await work.session.execute(
        update(A).where(A.c.status == AuctionStatus.SCHEDULED.value, A.c.start_time <= work.now)
        .values(status=AuctionStatus.LIVE.value, updated_at=func.now()).returning(A.c.id)
    )
    return len(result.all())


async def due(session: AsyncSession, status: AuctionStatus, column, now: datetime, limit: int) -> list[uuid.UUID]:
    """Auctions past a deadline that no other process is handling right now."""
    rows = await session.execute(
        select(A.c.id).where(A.c.status == status.value, column <= now)
        .order_by(column).limit(limit).with_for_update(skip_locked=True)
    )
    return [r[0] for r in rows]


async def standings(session: AsyncSession, auction_id: uuid.UUID) -> list[Standing]:
    """Each person's best bid, best first; equal amounts: the earlier bid first."""
    rows = await session.execute(text(
        """
        SELECT DISTINCT ON (bidder_id) bidder_id, amount, position FROM bids
        WHERE auction_id = :a AND bidder_id IS NOT NULL
        ORDER BY bidder_id, amount DESC, position
        """), {"a": auction_id})
    ordered = sorted(rows, key=lambda r: (-r.amount, r.position))
    return [Standing(r.bidder_id, r.amount) for r in ordered]


async def close(work: Work, auction_id: uuid.UUID) -> dict[str, Any] | None:
    """End one auction (its row already locked by `due`): the best bid meeting the reserve wins
    and its deposit is held; otherwise the vehicle is unsold. Returns None if already closed."""
    row = await lock(work.session, auction_id)
    if row is None or row["status"] != AuctionStatus.LIVE.value or row["end_time"] > work.now:
        return None
    state = state_of(row)
    rules.transition(state.status, AuctionStatus.ENDED)
    buyer = rules.choose_buyer(state, await standings(work.session, auction_id), set())
    kinds = [EventType.ENDED]
    values: dict[str, Any] = {"ended_at": work.now, "leader_id": None, "leader_max": None}
    if buyer is None:
        values["status"] = AuctionStatus.UNSOLD.value
        vehicle_status, event = VehicleStatus.AVAILABLE, "auction_unsold"
    else:
        values.update(await _offer(work, state, buyer))
        kinds.append(EventType.SETTLEMENT_STARTED)
        vehicle_status, event = VehicleStatus.PENDING_SETTLEMENT, "auction_won"
    values["sequence"] = row["sequence"] + len(kinds)
    after = await save(work.session, auction_id, **values)
    await write_events(work, row, after, kinds)
    await set_vehicle_status(work.session, row["vehicle_id"], vehicle_status, work.now, event, auction_id)
    return after


async def _offer(work: Work, state: AuctionState, buyer: Standing) -> dict[str, Any]:
    """Make `buyer` the winner: hold their deposit (as much of it as they have: a shortfall
    must be paid before the deadline) and start the 24-hour settlement clock."""
    funds = await wallet.view(work.session, buyer.bidder_id, lock_first=True, except_auction=state.id)
    deposit = rules.deposit_for(buyer.amount, state.deposit_percent)
    held = min(deposit, max(funds.available, ZERO))
    if held > 0:
        await wallet.post(work.session, work.now, wallet.Posting(
            buyer.bidder_id, EntryType.BID_DEPOSIT_HOLD, held, reference_type="auction",
            reference_id=state.id, description=f"{state.deposit_percent}% deposit on a won auction",
        ))
    return {
        "status": AuctionStatus.PENDING_SETTLEMENT.value, "winner_id": buyer.bidder_id,
        "winning_amount": buyer.amount, "deposit_held": held,
        "settlement_deadline": work.now + rules.SETTLEMENT_WINDOW,
    }


async def expire_settlement(work: Work, auction_id: uuid.UUID) -> dict[str, Any] | None:
    """A winner who did not pay by the deadline forfeits the held deposit (an offered buyer's is
    released); the next-highest bidder whose bid meets the reserve is offered the vehicle, or it
    is unsold."""
    row = await lock(work.session, auction_id)
    if (row is None or row["status"] != AuctionStatus.PENDING_SETTLEMENT.value
            or row["settlement_deadline"] > work.now):
        return None
    return await _pass_on(work, row, "the settlement deadline passed")


async def decline_offer(work: Work, auction_id: uuid.UUID) -> dict[str, Any]:
    """An offered buyer turns the vehicle down: their deposit is released and the offer moves on
    to the next-highest bidder, or the vehicle is unsold."""
    row = await _awaiting_actor(work, auction_id, DomainError(
        "NOT_YOUR_OFFER", "Only the buyer an auction awaits payment from can decline it"))
    if not rules.is_offer(row["passed_over"]):
        raise DomainError("NOT_AN_OFFER", "The auction's winner is bound by the winning bid: settle it "
                          "before the deadline or the deposit is forfeited")
    return await _pass_on(work, row, "the offer was declined")


async def _awaiting_actor(work: Work, auction_id: uuid.UUID, not_theirs: DomainError) -> Any:
    """The auction, locked, if it awaits the actor's payment and its deadline has not passed."""
    actor = work.actor
    assert actor is not None
    row = await lock(work.session, auction_id)
    if row is None:
        raise DomainError("NOT_FOUND", "No such auction", ("auctionId",))
    if row["status"] != AuctionStatus.PENDING_SETTLEMENT.value or row["winner_id"] != actor.user_id:
        raise not_theirs
    if row["settlement_deadline"] <= work.now:
        raise DomainError("SETTLEMENT_EXPIRED", "The settlement deadline has passed")
    return row


async def _pass_on(work: Work, row: Any, reason: str) -> dict[str, Any]:
    state = state_of(row)
    previous = row["winner_id"]
    if row["deposit_held"]:
        offered = rules.is_offer(row["passed_over"])
        kind = EntryType.BID_DEPOSIT_RELEASE if offered else EntryType.DEPOSIT_FORFEIT
        await wallet.post(work.session, work.now, wallet.Posting(
            previous, kind, row["deposit_held"], reference_type="auction", reference_id=row["id"],
            description=f"Deposit {'released' if offered else 'forfeited'}: {reason}",
        ))
    passed_over = [*row["passed_over"], previous]
    buyer = rules.choose_buyer(state, await standings(work.session, row["id"]), set(passed_over))
    values: dict[str, Any] = {"passed_over": passed_over, "deposit_held": None}
    kinds: list[EventType] = []
    if buyer is None:
        rules.transition(state.status, AuctionStatus.UNSOLD)
        values.update(status=AuctionStatus.UNSOLD.value, winner_id=None, winning_amount=None,
                      settlement_deadline=None)
        kinds.append(EventType.ENDED)
        await set_vehicle_status(work.session, row["vehicle_id"], VehicleStatus.AVAILABLE, work.now,
                                 "auction_unsold", row["id"])
    else:
        values.update(await _offer(work, state, buyer))
        kinds.append(EventType.SETTLEMENT_STARTED)
    values["sequence"] = row["sequence"] + len(kinds)
    after = await save(work.session, row["id"], **values)
    await write_events(work, row, after, kinds)
    return after


async def settle(work: Work, auction_id: uuid.UUID) -> dict[str, Any]:
    """The winner pays: the held deposit is released into the payment of the hammer price, the
    seller is credited, and the vehicle moves on to settlement (inspection, papers, delivery)."""
    row = await _awaiting_actor(work, auction_id, DomainError(
        "NOT_YOUR_SETTLEMENT", "Only the winner can settle an auction awaiting payment"))
    buyer = row["winner_id"]  # the actor
    price, held = row["winning_amount"], row["deposit_held"] or ZERO
    await wallet.lock(work.session, [buyer, row["seller_id"]])
    funds = await wallet.view(work.session, buyer, except_auction=auction_id)
    if funds.balance < price or funds.available + held < price:
        raise DomainError("INSUFFICIENT_FUNDS",
                          f"Settling needs {price}; the wallet holds {funds.available + held} for it")
    postings = [
        wallet.Posting(buyer, EntryType.AUCTION_PAYMENT, price, "auction", auction_id,
                       description="Payment for a won auction"),
        wallet.Posting(row["seller_id"], EntryType.AUCTION_PROCEEDS, price, "auction", auction_id,
                       description="Proceeds of a sold vehicle"),
    ]
    if held:
        postings.insert(0, wallet.Posting(buyer, EntryType.BID_DEPOSIT_RELEASE, held, "auction",
                                          auction_id, description="Deposit applied to the payment"))
    await wallet.post(work.session, work.now, *postings)
    rules.transition(AuctionStatus.PENDING_SETTLEMENT, AuctionStatus.SETTLED)
    after = await save(work.session, auction_id, status=AuctionStatus.SETTLED.value, settled_at=work.now,
                       deposit_held=None, sequence=row["sequence"] + 1)
    await write_events(work, row, after, [EventType.SETTLED])
    await set_vehicle_status(work.session, row["vehicle_id"], VehicleStatus.IN_SETTLEMENT, work.now,
                             "auction_settled", auction_id)
    return after


def decode_bid(data: dict[str, Any]) -> dict[str, Any]:
    """A bid from an event payload, with the types of a bid row."""
    return {
        "id": uuid.UUID(data["id"]), "amount": Decimal(data["amount"]),
        "bidder_id": uuid.UUID(data["bidder_id"]) if data["bidder_id"] else None,
        "is_proxy": data["is_proxy"], "is_platform_bid": data["is_platform_bid"],
        "created_at": datetime.fromisoformat(data["created_at"]), "position": data["position"],
    }
