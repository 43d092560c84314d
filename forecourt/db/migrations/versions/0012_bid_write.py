"""bid writes in one round trip: write_bids() locks, checks that nothing the rules read has
changed, and writes; bid_context() can read without locking; bidder_funds() is what both read

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""
import importlib.util
from pathlib import Path

from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# What the bid rules read about each bidder. `version` is the wallet row's xmin: any change to
# the balance or holds gives the row a new one. `committed` is not in the wallet row (it is the
# bidder's leading bids on other live auctions), so it is compared by value.
BIDDER_FUNDS = """
CREATE FUNCTION bidder_funds(p_auction uuid, p_bidders uuid[])
RETURNS TABLE (id uuid, kyc_status text, balance numeric, held numeric, committed numeric,
               version text, has_bid boolean)
LANGUAGE sql STABLE AS $$
    SELECT u.id, u.kyc_status::text, coalesce(w.balance, 0), coalesce(w.held, 0),
           (SELECT coalesce(sum(greatest(x.current_price, coalesce(x.leader_max, 0))), 0)
              FROM auctions x
             WHERE x.status = 'live' AND x.leader_id = u.id AND x.id <> p_auction),
           w.xmin::text,
           EXISTS (SELECT 1 FROM bids b WHERE b.bidder_id = u.id AND b.auction_id = p_auction)
    FROM users u LEFT JOIN wallets w ON w.user_id = u.id
    WHERE u.id = ANY(p_bidders)
$$
"""

# With p_lock, the locks come first, in the order every writer takes them (the auction, then
# wallets by user id), and the read after them sees everything committed before they were
# granted. Without, the read is one statement: one consistent snapshot, which write_bids()
# checks again under the locks. `version` is the auction row's xmin.
BID_CONTEXT = """
CREATE FUNCTION bid_context(p_auction uuid, p_bidders uuid[], p_key_bidders uuid[], p_keys text[],
                            p_lock boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF p_lock THEN
        PERFORM 1 FROM auctions WHERE id = p_auction FOR UPDATE;
        PERFORM 1 FROM wallets WHERE user_id = ANY(p_bidders) ORDER BY user_id FOR UPDATE;
    END IF;
    RETURN (
        SELECT jsonb_build_object(
            'auction', to_jsonb(a), 'version', a.xmin::text,
            'bidders', coalesce((SELECT jsonb_agg(to_jsonb(f)) FROM bidder_funds(p_auction, p_bidders) f),
                                '[]'::jsonb),
            'earlier', coalesce((
                SELECT jsonb_agg(to_jsonb(b))
                FROM bids b JOIN unnest(p_key_bidders, p_keys) AS k(bidder_id, idempotency_key)
                  ON b.bidder_id = k.bidder_id AND b.idempotency_key = k.idempotency_key
                WHERE b.auction_id = p_auction), '[]'::jsonb))
        FROM auctions a WHERE a.id = p_auction);
END $$
"""

# Locks as bid_context() does; false, having written nothing, when the auction row or a
# bidder's wallet differs from what the caller's rules read, or the bidder has committed more
# elsewhere since. (Less is fine: a bid allowed with more committed is allowed with less; and a
# bidder outbid on another auction commits less without their wallet being locked, even while
# this writer holds it.) The bids of an auction change only with its row, so its version also
# covers whether a bidder has bid here and earlier idempotency keys.
WRITE_BIDS = """
CREATE FUNCTION write_bids(
    p_auction uuid, p_version text, p_bidders uuid[], p_wallet_versions text[], p_committed numeric[],
    p_now timestamptz,
    p_bid_ids uuid[], p_positions int[], p_bidder_ids uuid[], p_amounts numeric[], p_max_amounts numeric[],
    p_is_proxy bool[], p_is_platform bool[], p_keys text[],
    p_sequences int[], p_types text[], p_event_bids uuid[], p_payloads jsonb[],
    p_current_price numeric, p_leader_id uuid, p_leader_max numeric, p_bid_count int, p_bidder_count int,
    p_platform_bids int, p_end_time timestamptz, p_sequence int)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM auctions WHERE id = p_auction AND xmin::text = p_version FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;  -- changed since it was read (a concurrent update is re-checked after it commits)
    END IF;
    PERFORM 1 FROM wallets WHERE user_id = ANY(p_bidders) ORDER BY user_id FOR UPDATE;
    IF EXISTS (
        SELECT 1 FROM unnest(p_bidders, p_wallet_versions, p_committed) AS r(id, version, committed)
        LEFT JOIN bidder_funds(p_auction, p_bidders) f ON f.id = r.id
        WHERE f.id IS NULL OR f.version IS DISTINCT FROM r.version OR f.committed > r.committed
    ) THEN
        RETURN false;
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
    WHERE id = p_auction;
    RETURN true;
END $$
"""


def upgrade() -> None:
    op.execute("DROP FUNCTION bid_context(uuid, uuid[], uuid[], text[])")
    op.execute(BIDDER_FUNDS)
    op.execute(BID_CONTEXT)
    op.execute(WRITE_BIDS)


def downgrade() -> None:
    op.execute("DROP FUNCTION write_bids")
    op.execute("DROP FUNCTION bid_context(uuid, uuid[], uuid[], text[], boolean)")
    op.execute("DROP FUNCTION bidder_funds(uuid, uuid[])")
    op.execute(_revision_0006().BID_CONTEXT)


def _revision_0006():
    path = Path(__file__).with_name("0006_bid_context.py")
    spec = importlib.util.spec_from_file_location("revision_0006", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
