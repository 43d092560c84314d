"""vehicles' owner_id and catalog_id indexes hold only vehicles that have an owner / a catalog
entry: nothing looks vehicles up by a missing one, and the rows an import writes (no owner,
often no catalog entry) no longer go into them

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for column in ('owner_id', 'catalog_id'):
        op.drop_index(f'ix_vehicles_{column}', table_name='vehicles')
        op.create_index(f'ix_vehicles_{column}', 'vehicles', [column], unique=False,
                        postgresql_where=sa.text(f'{column} IS NOT NULL'))


def downgrade() -> None:
    for column in ('owner_id', 'catalog_id'):
        op.drop_index(f'ix_vehicles_{column}', table_name='vehicles',
                      postgresql_where=sa.text(f'{column} IS NOT NULL'))
        op.create_index(f'ix_vehicles_{column}', 'vehicles', [column], unique=False)
