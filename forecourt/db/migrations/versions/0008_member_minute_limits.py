"""Per-member training-minute limits set by organization admins

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('member_minute_limits',
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('organization_id', sa.UUID(), nullable=False),
    sa.Column('limit_minutes', sa.Integer(), nullable=False),
    sa.Column('used_minutes', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('limit_minutes >= 0', name=op.f('ck_member_minute_limits_limit_non_negative')),
    sa.CheckConstraint('used_minutes >= 0', name=op.f('ck_member_minute_limits_used_non_negative')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_member_minute_limits_organization_id_organizations')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_member_minute_limits_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_member_minute_limits'))
    )
    op.create_index(op.f('ix_member_minute_limits_organization_id'), 'member_minute_limits', ['organization_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_member_minute_limits_organization_id'), table_name='member_minute_limits')
    op.drop_table('member_minute_limits')
