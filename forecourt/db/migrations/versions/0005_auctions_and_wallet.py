"""auctions, bids, the auction event log, wallets, the ledger and provider payments

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


# Balances move only with their ledger rows: inserting a row applies it to the wallet (creating
# the wallet on first use) and records the balance after it; the ledger, bids and the auction
# event log are append-only; a wallet update that does not come from the ledger is refused.
LEDGER_TRIGGERS = (
    """
CREATE FUNCTION apply_ledger_entry() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO wallets (user_id) VALUES (NEW.user_id) ON CONFLICT (user_id) DO NOTHING;
    UPDATE wallets
       SET balance = balance + NEW.balance_delta, held = held + NEW.held_delta, updated_at = now()
     WHERE user_id = NEW.user_id
    RETURNING balance, held INTO NEW.balance_after, NEW.held_after;
    RETURN NEW;
END $$
""",
    """
CREATE TRIGGER transactions_apply BEFORE INSERT ON transactions
    FOR EACH ROW EXECUTE FUNCTION apply_ledger_entry()
""",
    """

CREATE FUNCTION refuse_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$
""",
    """
CREATE TRIGGER transactions_append_only BEFORE UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION refuse_rewrite()
""",
    """
CREATE TRIGGER bids_append_only BEFORE UPDATE OR DELETE ON bids
    FOR EACH ROW EXECUTE FUNCTION refuse_rewrite()
""",
    """
CREATE TRIGGER auction_events_append_only BEFORE UPDATE OR DELETE ON auction_events
    FOR EACH ROW EXECUTE FUNCTION refuse_rewrite()
""",
    """

CREATE FUNCTION guard_wallet_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR ((NEW.balance, NEW.held) IS DISTINCT FROM (OLD.balance, OLD.held)
                            AND pg_trigger_depth() < 2) THEN
        RAISE EXCEPTION 'wallet balances change only through the ledger'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$
""",
    """
CREATE TRIGGER wallets_ledger_only BEFORE UPDATE OR DELETE ON wallets
    FOR EACH ROW EXECUTE FUNCTION guard_wallet_balance()
""",
)

DROP_LEDGER_TRIGGERS = (
    "DROP TRIGGER wallets_ledger_only ON wallets",
    "DROP FUNCTION guard_wallet_balance()",
    "DROP TRIGGER auction_events_append_only ON auction_events",
    "DROP TRIGGER bids_append_only ON bids",
    "DROP TRIGGER transactions_append_only ON transactions",
    "DROP FUNCTION refuse_rewrite()",
    "DROP TRIGGER transactions_apply ON transactions",
    "DROP FUNCTION apply_ledger_entry()",
)


def upgrade() -> None:
    op.create_table('webhook_events',
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('provider', 'event_id', name=op.f('pk_webhook_events'))
    )
    op.create_table('payments',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('provider_ref', sa.String(length=255), nullable=False),
    sa.Column('amount', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('pending','processing','succeeded','failed','canceled')", name=op.f('ck_payments_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_payments_amount_positive')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_payments_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments'))
    )
    op.create_index('ix_payments_user_id', 'payments', ['user_id'], unique=False)
    op.create_index('uq_payments_provider_ref', 'payments', ['provider', 'provider_ref'], unique=True)
    op.create_table('transactions',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('type', sa.String(length=30), nullable=False),
    sa.Column('amount', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('balance_delta', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('held_delta', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('balance_after', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('held_after', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('status', sa.String(length=20), server_default='completed', nullable=False),
    sa.Column('reference_type', sa.String(length=30), nullable=True),
    sa.Column('reference_id', sa.UUID(), nullable=True),
    sa.Column('external_ref', sa.String(length=255), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_by', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending','completed','failed','reversed')", name=op.f('ck_transactions_status')),
    sa.CheckConstraint("type IN ('deposit','withdrawal','manual_adjustment','bid_deposit_hold','bid_deposit_release','auction_payment','auction_proceeds','deposit_forfeit','refund')", name=op.f('ck_transactions_type')),
    sa.CheckConstraint('balance_delta <> 0 OR held_delta <> 0', name=op.f('ck_transactions_moves_money')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_transactions_created_by_users')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_transactions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transactions'))
    )
    op.create_index('ix_transactions_reference', 'transactions', ['reference_id'], unique=False)
    op.create_index('ix_transactions_user_created', 'transactions', ['user_id', 'created_at', 'id'], unique=False)
    op.create_index('uq_transactions_external_ref', 'transactions', ['type', 'external_ref'], unique=True, postgresql_where=sa.text('external_ref IS NOT NULL'))
    op.create_table('wallets',
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('balance', sa.Numeric(precision=15, scale=2), server_default='0', nullable=False),
    sa.Column('held', sa.Numeric(precision=15, scale=2), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('balance >= 0', name=op.f('ck_wallets_balance_not_negative')),
    sa.CheckConstraint('held >= 0 AND held <= balance', name=op.f('ck_wallets_held_within_balance')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_wallets_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_wallets'))
    )
    op.create_table('auctions',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('vehicle_id', sa.UUID(), nullable=False),
    sa.Column('seller_id', sa.UUID(), nullable=False),
    sa.Column('created_by', sa.UUID(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('start_price', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('reserve_price', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('current_price', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('bid_increment', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('deposit_percent', sa.Numeric(precision=5, scale=2), server_default='20', nullable=False),
    sa.Column('reserve_protection', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('start_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('original_end_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('leader_id', sa.UUID(), nullable=True),
    sa.Column('leader_max', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('winner_id', sa.UUID(), nullable=True),
    sa.Column('winning_amount', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('settlement_deadline', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deposit_held', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('passed_over', postgresql.ARRAY(sa.UUID()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('bid_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('bidder_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('platform_bids', sa.Integer(), server_default='0', nullable=False),
    sa.Column('sequence', sa.Integer(), server_default='0', nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.Column('relisted_from', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('draft','scheduled','live','ended','pending_settlement','settled','unsold','cancelled','relisted')", name=op.f('ck_auctions_status')),
    sa.CheckConstraint('bid_count >= 0 AND bidder_count >= 0 AND sequence >= 0', name=op.f('ck_auctions_counters')),
    sa.CheckConstraint('bid_increment IS NULL OR bid_increment > 0', name=op.f('ck_auctions_bid_increment')),
    sa.CheckConstraint('deposit_percent > 0 AND deposit_percent <= 100', name=op.f('ck_auctions_deposit_percent')),
    sa.CheckConstraint('end_time > start_time AND original_end_time <= end_time', name=op.f('ck_auctions_schedule')),
    sa.CheckConstraint('reserve_price IS NULL OR reserve_price >= start_price', name=op.f('ck_auctions_reserve')),
    sa.CheckConstraint('start_price > 0', name=op.f('ck_auctions_start_price_positive')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_auctions_created_by_users')),
    sa.ForeignKeyConstraint(['leader_id'], ['users.id'], name=op.f('fk_auctions_leader_id_users')),
    sa.ForeignKeyConstraint(['relisted_from'], ['auctions.id'], name=op.f('fk_auctions_relisted_from_auctions')),
    sa.ForeignKeyConstraint(['seller_id'], ['users.id'], name=op.f('fk_auctions_seller_id_users')),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicles.id'], name=op.f('fk_auctions_vehicle_id_vehicles')),
    sa.ForeignKeyConstraint(['winner_id'], ['users.id'], name=op.f('fk_auctions_winner_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auctions'))
    )
    op.create_index('ix_auctions_live_leader', 'auctions', ['leader_id'], unique=False, postgresql_where=sa.text("status = 'live'"))
    op.create_index('ix_auctions_settlement', 'auctions', ['settlement_deadline'], unique=False, postgresql_where=sa.text("status = 'pending_settlement'"))
    op.create_index('ix_auctions_status_end_time', 'auctions', ['status', 'end_time'], unique=False)
    op.create_index('ix_auctions_status_start_time', 'auctions', ['status', 'start_time'], unique=False)
    op.create_index('uq_auctions_active_vehicle', 'auctions', ['vehicle_id'], unique=True, postgresql_where=sa.text("status IN ('draft','ended','live','pending_settlement','scheduled')"))
    op.create_table('bids',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('auction_id', sa.UUID(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('bidder_id', sa.UUID(), nullable=True),
    sa.Column('amount', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('max_amount', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('is_proxy', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('is_platform_bid', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('idempotency_key', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_bids_amount_positive')),
    sa.CheckConstraint('is_platform_bid = (bidder_id IS NULL)', name=op.f('ck_bids_platform_has_no_bidder')),
    sa.ForeignKeyConstraint(['auction_id'], ['auctions.id'], name=op.f('fk_bids_auction_id_auctions')),
    sa.ForeignKeyConstraint(['bidder_id'], ['users.id'], name=op.f('fk_bids_bidder_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bids'))
    )
    op.create_index('ix_bids_bidder_auction', 'bids', ['bidder_id', 'auction_id'], unique=False)
    op.create_index('uq_bids_auction_position', 'bids', ['auction_id', 'position'], unique=True)
    op.create_index('uq_bids_idempotency', 'bids', ['auction_id', 'bidder_id', 'idempotency_key'], unique=True, postgresql_where=sa.text('idempotency_key IS NOT NULL'))
    op.create_table('auction_events',
    sa.Column('auction_id', sa.UUID(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=30), nullable=False),
    sa.Column('bid_id', sa.UUID(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.ForeignKeyConstraint(['auction_id'], ['auctions.id'], name=op.f('fk_auction_events_auction_id_auctions')),
    sa.ForeignKeyConstraint(['bid_id'], ['bids.id'], name=op.f('fk_auction_events_bid_id_bids')),
    sa.PrimaryKeyConstraint('auction_id', 'sequence', name=op.f('pk_auction_events'))
    )
    for statement in LEDGER_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_LEDGER_TRIGGERS:
        op.execute(statement)
    op.drop_table('auction_events')
    op.drop_index('uq_bids_idempotency', table_name='bids', postgresql_where=sa.text('idempotency_key IS NOT NULL'))
    op.drop_index('uq_bids_auction_position', table_name='bids')
    op.drop_index('ix_bids_bidder_auction', table_name='bids')
    op.drop_table('bids')
    op.drop_index('uq_auctions_active_vehicle', table_name='auctions', postgresql_where=sa.text("status IN ('draft','ended','live','pending_settlement','scheduled')"))
    op.drop_index('ix_auctions_status_start_time', table_name='auctions')
    op.drop_index('ix_auctions_status_end_time', table_name='auctions')
    op.drop_index('ix_auctions_settlement', table_name='auctions', postgresql_where=sa.text("status = 'pending_settlement'"))
    op.drop_index('ix_auctions_live_leader', table_name='auctions', postgresql_where=sa.text("status = 'live'"))
    op.drop_table('auctions')
    op.drop_table('wallets')
    op.drop_index('uq_transactions_external_ref', table_name='transactions', postgresql_where=sa.text('external_ref IS NOT NULL'))
    op.drop_index('ix_transactions_user_created', table_name='transactions')
    op.drop_index('ix_transactions_reference', table_name='transactions')
    op.drop_table('transactions')
    op.drop_index('uq_payments_provider_ref', table_name='payments')
    op.drop_index('ix_payments_user_id', table_name='payments')
    op.drop_table('payments')
    op.drop_table('webhook_events')
