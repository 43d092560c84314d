"""Account security: an invitation is accepted only with the single-use secret its admin was
shown (stored as a SHA-256, as API tokens are); a user's token epoch, carried by each access
token, so that changing the password or signing out everywhere ends every earlier session

Invitations pending before this revision have no secret and cannot be accepted: their admins
invite again to get one.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('organization_invitations', sa.Column('token_hash', sa.String(length=64), nullable=True))
    op.add_column('users', sa.Column('token_epoch', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    op.drop_column('users', 'token_epoch')
    op.drop_column('organization_invitations', 'token_hash')
