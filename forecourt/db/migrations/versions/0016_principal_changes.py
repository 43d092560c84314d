"""Changes to who a user is (role, KYC status, organization and its role, active, token
epoch) and revoked API tokens are announced on the `forecourt_principals` channel (LISTEN/NOTIFY, delivered at
commit) with the user's id, whatever writes them: the API, the command line or an operator's
SQL. Every server process listens, forgets the user's cached identity and re-checks the
user's open WebSockets (forecourt/auth/changes.py).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

CHANNEL = "forecourt_principals"


def upgrade() -> None:
    # TG_ARGV[0]: the column holding the user's id in the table the trigger is on.
    op.execute(f"""
        CREATE FUNCTION announce_principal_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', to_jsonb(NEW) ->> TG_ARGV[0]);
            RETURN NULL;
        END $$""")
    op.execute("""
        CREATE TRIGGER users_principal_changed AFTER UPDATE ON users FOR EACH ROW
        WHEN ((OLD.role, OLD.kyc_status, OLD.organization_id, OLD.org_role, OLD.is_active, OLD.token_epoch)
              IS DISTINCT FROM
              (NEW.role, NEW.kyc_status, NEW.organization_id, NEW.org_role, NEW.is_active, NEW.token_epoch))
        EXECUTE FUNCTION announce_principal_change('id')""")
    op.execute("""
        CREATE TRIGGER api_tokens_revoked AFTER UPDATE ON api_tokens FOR EACH ROW
        WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
        EXECUTE FUNCTION announce_principal_change('user_id')""")


def downgrade() -> None:
    op.execute("DROP TRIGGER api_tokens_revoked ON api_tokens")
    op.execute("DROP TRIGGER users_principal_changed ON users")
    op.execute("DROP FUNCTION announce_principal_change()")
