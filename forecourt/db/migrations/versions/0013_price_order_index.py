"""ix_vehicles_price on the price listings sort and filter by (coalesce(price, 0), as the
cursor never holds a NULL), so PRICE_ASC / PRICE_DESC pages and price filters use it

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28
"""
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_vehicles_price', table_name='vehicles')
    op.execute("CREATE INDEX ix_vehicles_price ON vehicles (coalesce(price, 0), id)")


def downgrade() -> None:
    op.drop_index('ix_vehicles_price', table_name='vehicles')
    op.create_index('ix_vehicles_price', 'vehicles', ['price', 'id'], unique=False)
