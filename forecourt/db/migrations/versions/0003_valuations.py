"""valuations: the history of each vehicle's market value

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('vehicle_valuations',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('vehicle_id', sa.UUID(), nullable=False),
    sa.Column('market_value', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('foreign_used', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('local_used', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('brand_new', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('investment_score', sa.Integer(), nullable=False),
    sa.Column('signal', sa.String(length=4), nullable=False),
    sa.Column('depreciation', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('comparables', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("signal IN ('BUY','HOLD','SELL')", name=op.f('ck_vehicle_valuations_signal')),
    sa.CheckConstraint('investment_score BETWEEN 1 AND 10', name=op.f('ck_vehicle_valuations_investment_score')),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicles.id'], name=op.f('fk_vehicle_valuations_vehicle_id_vehicles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vehicle_valuations'))
    )
    op.create_index('ix_vehicle_valuations_latest', 'vehicle_valuations', ['vehicle_id', 'as_of'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_vehicle_valuations_latest', table_name='vehicle_valuations')
    op.drop_table('vehicle_valuations')
