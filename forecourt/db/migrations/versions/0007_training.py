"""Sales training: subjects, personas, scenarios, sessions, transcripts, feedback, the session
event log, minute usage; Stripe Billing subscriptions for organizations

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


# The database refuses what the services never do, so a bug cannot rewrite history: the
# transcript, feedback, usage and event log are append-only; turns join only running sessions;
# a finished session changes only by a manager's score override.
TRIGGERS = [
    """
CREATE TRIGGER training_events_append_only BEFORE UPDATE OR DELETE ON training_events
    FOR EACH ROW EXECUTE FUNCTION refuse_rewrite()
""",
    """
CREATE TRIGGER training_feedback_append_only BEFORE UPDATE OR DELETE ON training_feedback
    FOR EACH ROW EXECUTE FUNCTION refuse_rewrite()
""",
    """
CREATE TRIGGER usage_records_append_only BEFORE UPDATE OR DELETE ON usage_records
    FOR EACH ROW EXECUTE FUNCTION refuse_rewrite()
""",
    """
CREATE TRIGGER training_turns_append_only BEFORE UPDATE OR DELETE ON training_turns
    FOR EACH ROW EXECUTE FUNCTION refuse_rewrite()
""",
    """
CREATE FUNCTION guard_training_turn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM training_sessions
                   WHERE id = NEW.session_id AND status = 'in_progress') THEN
        RAISE EXCEPTION 'training session % is not in progress', NEW.session_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$
""",
    """
CREATE TRIGGER training_turns_running_session BEFORE INSERT ON training_turns
    FOR EACH ROW EXECUTE FUNCTION guard_training_turn()
""",
    """
CREATE FUNCTION guard_finished_session() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'training sessions are never deleted' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.status <> 'in_progress' AND (
        to_jsonb(NEW) - '{override_score,override_reason,overridden_by,overridden_at}'::text[]
        IS DISTINCT FROM
        to_jsonb(OLD) - '{override_score,override_reason,overridden_by,overridden_at}'::text[]
    ) THEN
        RAISE EXCEPTION 'training session % is finished', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$
""",
    """
CREATE TRIGGER training_sessions_finished_immutable BEFORE UPDATE OR DELETE ON training_sessions
    FOR EACH ROW EXECUTE FUNCTION guard_finished_session()
""",
]

DROP_TRIGGERS = [
    "DROP TRIGGER training_sessions_finished_immutable ON training_sessions",
    "DROP FUNCTION guard_finished_session()",
    "DROP TRIGGER training_turns_running_session ON training_turns",
    "DROP FUNCTION guard_training_turn()",
    "DROP TRIGGER training_turns_append_only ON training_turns",
    "DROP TRIGGER usage_records_append_only ON usage_records",
    "DROP TRIGGER training_feedback_append_only ON training_feedback",
    "DROP TRIGGER training_events_append_only ON training_events",
]


def upgrade() -> None:
    op.create_table('billing_subscriptions',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('organization_id', sa.UUID(), nullable=False),
    sa.Column('stripe_subscription_id', sa.String(length=255), nullable=False),
    sa.Column('plan', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('current_period_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('current_period_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_at_period_end', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('trial_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("plan IN ('free','basic','pro')", name=op.f('ck_billing_subscriptions_plan')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_billing_subscriptions_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_subscriptions')),
    sa.UniqueConstraint('stripe_subscription_id', name=op.f('uq_billing_subscriptions_stripe_subscription_id'))
    )
    op.create_index(op.f('ix_billing_subscriptions_organization_id'), 'billing_subscriptions', ['organization_id'], unique=False)
    op.create_table('buyer_personas',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('organization_id', sa.UUID(), nullable=True),
    sa.Column('type', sa.String(length=60), nullable=False),
    sa.Column('personality', sa.String(length=200), nullable=False),
    sa.Column('budget', sa.String(length=60), nullable=True),
    sa.Column('priorities', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('background', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_buyer_personas_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_buyer_personas'))
    )
    op.create_index('uq_buyer_personas_org_type', 'buyer_personas', ['organization_id', 'type'], unique=True, postgresql_nulls_not_distinct=True)
    op.create_table('training_products',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('organization_id', sa.UUID(), nullable=True),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('category', sa.String(length=60), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('features', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('pricing_tiers', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('objections', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('training_tips', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("jsonb_typeof(objections) = 'array'", name=op.f('ck_training_products_objections_array')),
    sa.CheckConstraint("jsonb_typeof(pricing_tiers) = 'array'", name=op.f('ck_training_products_pricing_tiers_array')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_training_products_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_products'))
    )
    op.create_index('uq_training_products_org_name', 'training_products', ['organization_id', 'name'], unique=True, postgresql_nulls_not_distinct=True)
    op.create_table('scenarios',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('organization_id', sa.UUID(), nullable=True),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('difficulty', sa.SmallInteger(), nullable=False),
    sa.Column('persona_id', sa.UUID(), nullable=False),
    sa.Column('catalog_entry_id', sa.UUID(), nullable=True),
    sa.Column('product_id', sa.UUID(), nullable=True),
    sa.Column('customer_type', sa.String(length=60), nullable=True),
    sa.Column('objections', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('pain_points', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('key_features', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('rubric', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('pass_score', sa.Float(), server_default='80', nullable=False),
    sa.Column('created_by', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("jsonb_typeof(rubric) = 'object'", name=op.f('ck_scenarios_rubric_object')),
    sa.CheckConstraint('difficulty BETWEEN 1 AND 5', name=op.f('ck_scenarios_difficulty')),
    sa.CheckConstraint('num_nonnulls(catalog_entry_id, product_id) = 1', name=op.f('ck_scenarios_one_subject')),
    sa.CheckConstraint('pass_score BETWEEN 0 AND 100', name=op.f('ck_scenarios_pass_score')),
    sa.ForeignKeyConstraint(['catalog_entry_id'], ['vehicle_catalog.id'], name=op.f('fk_scenarios_catalog_entry_id_vehicle_catalog')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_scenarios_created_by_users')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_scenarios_organization_id_organizations')),
    sa.ForeignKeyConstraint(['persona_id'], ['buyer_personas.id'], name=op.f('fk_scenarios_persona_id_buyer_personas')),
    sa.ForeignKeyConstraint(['product_id'], ['training_products.id'], name=op.f('fk_scenarios_product_id_training_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scenarios'))
    )
    op.create_index('uq_scenarios_org_name', 'scenarios', ['organization_id', 'name'], unique=True, postgresql_nulls_not_distinct=True)
    op.create_table('training_sessions',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('trainee_id', sa.UUID(), nullable=False),
    sa.Column('organization_id', sa.UUID(), nullable=False),
    sa.Column('scenario_id', sa.UUID(), nullable=False),
    sa.Column('status', sa.String(length=12), server_default='in_progress', nullable=False),
    sa.Column('mode', sa.String(length=5), server_default='text', nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('minutes_allowed', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.Integer(), server_default='0', nullable=False),
    sa.Column('turn_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('metrics', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('overall_score', sa.Float(), nullable=True),
    sa.Column('scored_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('pass_score', sa.Float(), nullable=False),
    sa.Column('sale_completed', sa.Boolean(), nullable=True),
    sa.Column('feedback', sa.Text(), nullable=True),
    sa.Column('override_score', sa.Float(), nullable=True),
    sa.Column('override_reason', sa.Text(), nullable=True),
    sa.Column('overridden_by', sa.UUID(), nullable=True),
    sa.Column('overridden_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(status = 'in_progress') = (ended_at IS NULL)", name=op.f('ck_training_sessions_ended_when_closed')),
    sa.CheckConstraint("mode IN ('text','voice')", name=op.f('ck_training_sessions_mode')),
    sa.CheckConstraint("status <> 'completed' OR overall_score IS NOT NULL", name=op.f('ck_training_sessions_completed_scored')),
    sa.CheckConstraint("status IN ('in_progress','completed','cancelled')", name=op.f('ck_training_sessions_status')),
    sa.CheckConstraint('override_score IS NULL OR override_score BETWEEN 0 AND 100', name=op.f('ck_training_sessions_override_range')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_training_sessions_organization_id_organizations')),
    sa.ForeignKeyConstraint(['overridden_by'], ['users.id'], name=op.f('fk_training_sessions_overridden_by_users')),
    sa.ForeignKeyConstraint(['scenario_id'], ['scenarios.id'], name=op.f('fk_training_sessions_scenario_id_scenarios')),
    sa.ForeignKeyConstraint(['trainee_id'], ['users.id'], name=op.f('fk_training_sessions_trainee_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_sessions'))
    )
    op.create_index('ix_training_sessions_org_status', 'training_sessions', ['organization_id', 'status'], unique=False)
    op.create_index('ix_training_sessions_started', 'training_sessions', ['started_at', 'id'], unique=False)
    op.create_index('ix_training_sessions_trainee_ended', 'training_sessions', ['trainee_id', 'ended_at'], unique=False)
    op.create_table('training_events',
    sa.Column('session_id', sa.UUID(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=20), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("type IN ('TRANSCRIPT','SCORE_UPDATED','COMPLETED','CANCELLED')", name=op.f('ck_training_events_type')),
    sa.ForeignKeyConstraint(['session_id'], ['training_sessions.id'], name=op.f('fk_training_events_session_id_training_sessions')),
    sa.PrimaryKeyConstraint('session_id', 'sequence', name=op.f('pk_training_events'))
    )
    op.create_table('training_feedback',
    sa.Column('session_id', sa.UUID(), nullable=False),
    sa.Column('evaluator', sa.String(length=20), nullable=False),
    sa.Column('metrics', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('talk_ratio', sa.Float(), nullable=False),
    sa.Column('filler_words', sa.Integer(), nullable=False),
    sa.Column('words_per_minute', sa.Float(), nullable=True),
    sa.Column('duration_seconds', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['training_sessions.id'], name=op.f('fk_training_feedback_session_id_training_sessions')),
    sa.PrimaryKeyConstraint('session_id', name=op.f('pk_training_feedback'))
    )
    op.create_table('training_turns',
    sa.Column('session_id', sa.UUID(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('trainee','customer')", name=op.f('ck_training_turns_role')),
    sa.CheckConstraint('length(text) BETWEEN 1 AND 4000', name=op.f('ck_training_turns_text_length')),
    sa.ForeignKeyConstraint(['session_id'], ['training_sessions.id'], name=op.f('fk_training_turns_session_id_training_sessions')),
    sa.PrimaryKeyConstraint('session_id', 'position', name=op.f('pk_training_turns'))
    )
    op.create_table('usage_records',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('organization_id', sa.UUID(), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('session_id', sa.UUID(), nullable=False),
    sa.Column('minutes_used', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('minutes_used >= 0', name=op.f('ck_usage_records_minutes_non_negative')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_usage_records_organization_id_organizations')),
    sa.ForeignKeyConstraint(['session_id'], ['training_sessions.id'], name=op.f('fk_usage_records_session_id_training_sessions')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_usage_records_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_records')),
    sa.UniqueConstraint('session_id', name=op.f('uq_usage_records_session_id'))
    )
    op.create_index(op.f('ix_usage_records_organization_id'), 'usage_records', ['organization_id'], unique=False)
    op.add_column('minute_quotas', sa.Column('period_end', sa.DateTime(timezone=True), nullable=True))
    op.add_column('organizations', sa.Column('stripe_customer_id', sa.String(length=255), nullable=True))
    op.add_column('organizations', sa.Column('trial_ends_at', sa.DateTime(timezone=True), nullable=True))
    op.create_unique_constraint(op.f('uq_organizations_stripe_customer_id'), 'organizations', ['stripe_customer_id'])

    for statement in TRIGGERS:
        op.execute(statement)

def downgrade() -> None:
    for statement in DROP_TRIGGERS:
        op.execute(statement)
    op.drop_constraint(op.f('uq_organizations_stripe_customer_id'), 'organizations', type_='unique')
    op.drop_column('organizations', 'trial_ends_at')
    op.drop_column('organizations', 'stripe_customer_id')
    op.drop_column('minute_quotas', 'period_end')
    op.drop_index(op.f('ix_usage_records_organization_id'), table_name='usage_records')
    op.drop_table('usage_records')
    op.drop_table('training_turns')
    op.drop_table('training_feedback')
    op.drop_table('training_events')
    op.drop_index('ix_training_sessions_trainee_ended', table_name='training_sessions')
    op.drop_index('ix_training_sessions_started', table_name='training_sessions')
    op.drop_index('ix_training_sessions_org_status', table_name='training_sessions')
    op.drop_table('training_sessions')
    op.drop_index('uq_scenarios_org_name', table_name='scenarios', postgresql_nulls_not_distinct=True)
    op.drop_table('scenarios')
    op.drop_index('uq_training_products_org_name', table_name='training_products', postgresql_nulls_not_distinct=True)
    op.drop_table('training_products')
    op.drop_index('uq_buyer_personas_org_type', table_name='buyer_personas', postgresql_nulls_not_distinct=True)
    op.drop_table('buyer_personas')
    op.drop_index(op.f('ix_billing_subscriptions_organization_id'), table_name='billing_subscriptions')
    op.drop_table('billing_subscriptions')
