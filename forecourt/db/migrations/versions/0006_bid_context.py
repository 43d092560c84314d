"""bid_context(): lock an auction and its bidders' wallets and read what bidding needs, in one
round trip

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# Locks in the order every writer uses (the auction, then wallets by user id), then reads each
# bidder's KYC, balance, commitments on other live auctions they lead, whether they have bid
# here, and earlier bids with the same idempotency keys. Each statement of a PL/pgSQL function
# takes a fresh snapshot, so the reads see everything committed before the locks were granted.
BID_CONTEXT = """
CREATE FUNCTION bid_context(p_auction uuid, p_bidders uuid[], p_key_bidders uuid[], p_keys text[])
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    a auctions;
    result jsonb;
BEGIN
    SELECT * INTO a FROM auctions WHERE id = p_auction FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM wallets WHERE user_id = ANY(p_bidders) ORDER BY user_id FOR UPDATE;
    SELECT jsonb_build_object(
        'auction', to_jsonb(a),
        'bidders', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                'id', u.id, 'kyc_status', u.kyc_status,
                'balance', coalesce(w.balance, 0), 'held', coalesce(w.held, 0),
                'committed', (SELECT coalesce(sum(greatest(x.current_price, coalesce(x.leader_max, 0))), 0)
                                FROM auctions x
                               WHERE x.status = 'live' AND x.leader_id = u.id AND x.id <> p_auction),
                'has_bid', EXISTS (SELECT 1 FROM bids b WHERE b.bidder_id = u.id AND b.auction_id = p_auction)))
            FROM users u LEFT JOIN wallets w ON w.user_id = u.id
            WHERE u.id = ANY(p_bidders)), '[]'::jsonb),
        'earlier', coalesce((
            SELECT jsonb_agg(to_jsonb(b))
            FROM bids b JOIN unnest(p_key_bidders, p_keys) AS k(bidder_id, idempotency_key)
              ON b.bidder_id = k.bidder_id AND b.idempotency_key = k.idempotency_key
            WHERE b.auction_id = p_auction), '[]'::jsonb))
    INTO result;
    RETURN result;
END $$
"""


def upgrade() -> None:
    op.execute(BID_CONTEXT)


def downgrade() -> None:
    op.execute("DROP FUNCTION bid_context(uuid, uuid[], uuid[], text[])")
