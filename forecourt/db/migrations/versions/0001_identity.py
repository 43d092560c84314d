"""identity: users, credentials, KYC, organizations, minute quotas, the audit log

Revision ID: 0001
Revises: 
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('organizations',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('plan', sa.String(length=10), server_default='free', nullable=False),
    sa.Column('created_by', sa.UUID(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("plan IN ('free','basic','pro')", name=op.f('ck_organizations_plan')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organizations'))
    )
    op.create_table('minute_quotas',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('organization_id', sa.UUID(), nullable=False),
    sa.Column('total_minutes', sa.Integer(), nullable=False),
    sa.Column('used_minutes', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('total_minutes >= 0', name=op.f('ck_minute_quotas_total_non_negative')),
    sa.CheckConstraint('used_minutes >= 0', name=op.f('ck_minute_quotas_used_non_negative')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_minute_quotas_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_minute_quotas')),
    sa.UniqueConstraint('organization_id', name=op.f('uq_minute_quotas_organization_id'))
    )
    op.create_table('users',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('role', sa.String(length=20), server_default='user', nullable=False),
    sa.Column('display_name', sa.String(length=100), nullable=True),
    sa.Column('kyc_status', sa.String(length=20), server_default='none', nullable=False),
    sa.Column('organization_id', sa.UUID(), nullable=True),
    sa.Column('org_role', sa.String(length=10), nullable=True),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kyc_status IN ('none','pending','approved','rejected')", name=op.f('ck_users_kyc_status')),
    sa.CheckConstraint("role IN ('user','verified_seller','dealer','concierge','manager','admin')", name=op.f('ck_users_role')),
    sa.CheckConstraint("role NOT IN ('dealer','verified_seller') OR kyc_status = 'approved'", name=op.f('ck_users_kyc_gated_role')),
    sa.CheckConstraint('(organization_id IS NULL) = (org_role IS NULL)', name=op.f('ck_users_org_role_with_org')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_users_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_index('ix_users_organization_id', 'users', ['organization_id'], unique=False)
    op.create_index('ix_users_role', 'users', ['role'], unique=False)
    op.create_foreign_key(op.f('fk_organizations_created_by_users'), 'organizations', 'users', ['created_by'], ['id'])
    op.create_table('admin_audit_log',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('admin_id', sa.UUID(), nullable=False),
    sa.Column('action', sa.String(length=50), nullable=False),
    sa.Column('target_type', sa.String(length=30), nullable=True),
    sa.Column('target_id', sa.UUID(), nullable=True),
    sa.Column('old_value', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('new_value', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('ip_address', postgresql.INET(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['admin_id'], ['users.id'], name=op.f('fk_admin_audit_log_admin_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_audit_log'))
    )
    op.create_index('ix_admin_audit_log_action', 'admin_audit_log', ['action'], unique=False)
    op.create_index('ix_admin_audit_log_admin_id', 'admin_audit_log', ['admin_id'], unique=False)
    op.create_index('ix_admin_audit_log_target', 'admin_audit_log', ['target_type', 'target_id'], unique=False)
    op.create_table('api_tokens',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('scopes', postgresql.ARRAY(sa.String(length=20)), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_index('ix_api_tokens_user_id', 'api_tokens', ['user_id'], unique=False)
    op.create_table('kyc_applications',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), server_default='pending', nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('reviewed_by', sa.UUID(), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('bidder','dealer')", name=op.f('ck_kyc_applications_kind')),
    sa.CheckConstraint("status IN ('pending','approved','rejected')", name=op.f('ck_kyc_applications_status')),
    sa.ForeignKeyConstraint(['reviewed_by'], ['users.id'], name=op.f('fk_kyc_applications_reviewed_by_users')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_kyc_applications_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kyc_applications'))
    )
    op.create_index('ix_kyc_applications_status_created', 'kyc_applications', ['status', 'created_at'], unique=False)
    op.create_index('uq_kyc_applications_one_pending', 'kyc_applications', ['user_id'], unique=True, postgresql_where=sa.text("status = 'pending'"))
    op.create_table('refresh_tokens',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('family_id', sa.UUID(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_refresh_tokens_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refresh_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_refresh_tokens_token_hash'))
    )
    op.create_index('ix_refresh_tokens_family_id', 'refresh_tokens', ['family_id'], unique=False)
    # The audit log is append-only: no role, not even the application's, may rewrite history.
    op.execute(
        """
        CREATE FUNCTION forbid_audit_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'admin_audit_log is append-only (% refused)', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER admin_audit_log_immutable BEFORE UPDATE OR DELETE ON admin_audit_log "
        "FOR EACH ROW EXECUTE FUNCTION forbid_audit_log_change()"
    )
    op.execute(
        "CREATE TRIGGER admin_audit_log_no_truncate BEFORE TRUNCATE ON admin_audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION forbid_audit_log_change()"
    )


def downgrade() -> None:
    op.execute("DROP TABLE admin_audit_log")
    op.execute("DROP FUNCTION forbid_audit_log_change()")
    op.drop_index('ix_refresh_tokens_family_id', table_name='refresh_tokens')
    op.drop_table('refresh_tokens')
    op.drop_index('uq_kyc_applications_one_pending', table_name='kyc_applications', postgresql_where=sa.text("status = 'pending'"))
    op.drop_index('ix_kyc_applications_status_created', table_name='kyc_applications')
    op.drop_table('kyc_applications')
    op.drop_index('ix_api_tokens_user_id', table_name='api_tokens')
    op.drop_table('api_tokens')
    op.drop_index('ix_users_role', table_name='users')
    op.drop_index('ix_users_organization_id', table_name='users')
    op.drop_constraint(op.f('fk_organizations_created_by_users'), 'organizations', type_='foreignkey')
    op.drop_table('users')
    op.drop_table('minute_quotas')
    op.drop_table('organizations')
