"""write_bids() returns the auction's new row version, so a bid writer can apply the auction's
next bids to what it wrote without reading it back; when it writes nothing, it returns what it
found changed, as bid_context() would, so the bids are applied again without another round
trip; and it checks the two things a writer's memory of an auction does not cover: the
bidders' KYC status and idempotency keys used since

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""
import importlib.util
from pathlib import Path

from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

# As 0012's, plus: p_kyc is each bidder's KYC status as the rules saw it; a bid whose
# idempotency key is already on this auction writes nothing (the caller replays the earlier
# bid). `written_version` is the xmin of the auction row this statement (or the caller's
# transaction) wrote: what the next bid_context() would report. When nothing is written,
# `current_context` is bid_context() for the bidders, p_also and the bids' keys, read after the
# checks.
WRITE_BIDS = """
CREATE FUNCTION write_bids(
    p_auction uuid, p_version text, p_bidders uuid[], p_wallet_versions text[], p_committed numeric[],
    p_kyc text[], p_also uuid[], p_now timestamptz,
    p_bid_ids uuid[], p_positions int[], p_bidder_ids uuid[], p_amounts numeric[], p_max_amounts numeric[],
    p_is_proxy bool[], p_is_platform bool[], p_keys text[],
    p_sequences int[], p_types text[], p_event_bids uuid[], p_payloads jsonb[],
    p_current_price numeric, p_leader_id uuid, p_leader_max numeric, p_bid_count int, p_bidder_count int,
    p_platform_bids int, p_end_time timestamptz, p_sequence int,
    OUT written_version text, OUT current_context jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_unchanged boolean;
BEGIN
    -- not found: changed since it was read (a concurrent update is re-checked after it commits)
    PERFORM 1 FROM auctions WHERE id = p_auction AND xmin::text = p_version FOR UPDATE;
    v_unchanged := FOUND;
    IF v_unchanged THEN
        PERFORM 1 FROM wallets WHERE user_id = ANY(p_bidders) ORDER BY user_id FOR UPDATE;
        v_unchanged := NOT EXISTS (
            SELECT 1 FROM unnest(p_bidders, p_wallet_versions, p_committed, p_kyc) AS r(id, version, committed, kyc)
            LEFT JOIN bidder_funds(p_auction, p_bidders) f ON f.id = r.id
            WHERE f.id IS NULL OR f.version IS DISTINCT FROM r.version OR f.committed > r.committed
               OR f.kyc_status IS DISTINCT FROM r.kyc
        ) AND NOT EXISTS (
            SELECT 1 FROM bids b JOIN unnest(p_bidder_ids, p_keys) AS k(bidder_id, idempotency_key)
              ON b.bidder_id = k.bidder_id AND b.idempotency_key = k.idempotency_key
            WHERE b.auction_id = p_auction);
    END IF;
    IF NOT v_unchanged THEN
        current_context := bid_context(p_auction, p_bidders || p_also, p_bidder_ids, p_keys, false);
        RETURN;
    END IF;
    WITH new_bids AS (
        INSERT INTO bids (id, auction_id, position, bidder_id, amount, max_amount, is_proxy,
                          is_platform_bid, idempotency_key, created_at)
        SELECT b.id, p_auction, b.position, b.bidder_id, b.amount, b.max_amount, b.is_proxy,
               b.is_platform_bid, b.idempotency_key, p_now
        FROM unnest(p_bid_ids, p_positions, p_bidder_ids, p_amounts, p_max_amounts, p_is_proxy,
                    p_is_platform, p_keys)
             AS b(id, position, bidder_id, amount, max_amount, is_proxy, is_platform_bid, idempotency_key)
    ), new_events AS (
        INSERT INTO auction_events (auction_id, sequence, type, bid_id, occurred_at, payload)
        SELECT p_auction, e.sequence, e.type, e.bid_id, p_now, e.payload
        FROM unnest(p_sequences, p_types, p_event_bids, p_payloads) AS e(sequence, type, bid_id, payload)
    )
    UPDATE auctions SET current_price = p_current_price, leader_id = p_leader_id, leader_max = p_leader_max,
           bid_count = p_bid_count, bidder_count = p_bidder_count, platform_bids = p_platform_bids,
           end_time = p_end_time, sequence = p_sequence, updated_at = now()
    WHERE id = p_auction
    RETURNING xmin::text INTO written_version;
END $$
"""


def upgrade() -> None:
    op.execute("DROP FUNCTION write_bids")
    op.execute(WRITE_BIDS)


def downgrade() -> None:
    op.execute("DROP FUNCTION write_bids")
    op.execute(_revision_0012().WRITE_BIDS)


def _revision_0012():
    path = Path(__file__).with_name("0012_bid_write.py")
    spec = importlib.util.spec_from_file_location("revision_0012", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
