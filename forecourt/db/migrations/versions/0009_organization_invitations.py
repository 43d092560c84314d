"""Invitations to join an organization

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('organization_invitations',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('organization_id', sa.UUID(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('org_role', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), server_default='pending', nullable=False),
    sa.Column('invited_by', sa.UUID(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('responded_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("org_role IN ('admin','member')", name=op.f('ck_organization_invitations_org_role')),
    sa.CheckConstraint("status IN ('pending','accepted','declined')", name=op.f('ck_organization_invitations_status')),
    sa.ForeignKeyConstraint(['invited_by'], ['users.id'], name=op.f('fk_organization_invitations_invited_by_users')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_organization_invitations_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organization_invitations'))
    )
    op.create_index('ix_organization_invitations_email', 'organization_invitations', ['email'], unique=False)
    op.create_index('uq_organization_invitations_pending', 'organization_invitations', ['organization_id', 'email'], unique=True, postgresql_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_index('uq_organization_invitations_pending', table_name='organization_invitations', postgresql_where=sa.text("status = 'pending'"))
    op.drop_index('ix_organization_invitations_email', table_name='organization_invitations')
    op.drop_table('organization_invitations')
