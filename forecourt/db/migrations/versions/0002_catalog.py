"""catalog: reference catalog and vehicles, full-text search, feature vectors (pgvector)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # array_to_string is only STABLE; a generated column needs an IMMUTABLE function.
    op.execute(
        "CREATE FUNCTION immutable_array_to_string(text[], text) RETURNS text "
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT array_to_string($1, $2)'"
    )
    op.create_table('vehicle_catalog',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('make', sa.String(length=50), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('year_start', sa.Integer(), nullable=False),
    sa.Column('year_end', sa.Integer(), nullable=True),
    sa.Column('trim', sa.String(length=50), nullable=True),
    sa.Column('body_type', sa.String(length=30), nullable=True),
    sa.Column('engine_code', sa.String(length=30), nullable=True),
    sa.Column('displacement_cc', sa.Integer(), nullable=True),
    sa.Column('horsepower', sa.Integer(), nullable=True),
    sa.Column('torque_nm', sa.Integer(), nullable=True),
    sa.Column('transmission', sa.String(length=30), nullable=True),
    sa.Column('drivetrain', sa.String(length=10), nullable=True),
    sa.Column('fuel_type', sa.String(length=20), nullable=True),
    sa.Column('specs', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('price_foreign_used', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('price_local_used', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('price_brand_new', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('clearing_cost_est', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('resell_rank', sa.Integer(), nullable=True),
    sa.Column('popularity_index', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('resell_rank BETWEEN 1 AND 10', name=op.f('ck_vehicle_catalog_resell_rank')),
    sa.CheckConstraint('year_end IS NULL OR year_end >= year_start', name=op.f('ck_vehicle_catalog_years')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vehicle_catalog'))
    )
    op.create_index('ix_vehicle_catalog_make_model', 'vehicle_catalog', [sa.literal_column('lower(make)'), sa.literal_column('lower(model)')], unique=False)
    op.create_index('ix_vehicle_catalog_years', 'vehicle_catalog', ['year_start', 'year_end'], unique=False)
    op.create_index('uq_vehicle_catalog_identity', 'vehicle_catalog', [sa.literal_column('lower(make)'), sa.literal_column('lower(model)'), 'year_start', sa.literal_column("coalesce(lower(trim), '')")], unique=True)
    op.create_table('vehicles',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('catalog_id', sa.UUID(), nullable=True),
    sa.Column('owner_id', sa.UUID(), nullable=True),
    sa.Column('listed_by', sa.UUID(), nullable=True),
    sa.Column('vin', sa.String(length=17), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('make', sa.String(length=50), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('trim', sa.String(length=50), nullable=True),
    sa.Column('condition', sa.String(length=20), server_default='clean', nullable=False),
    sa.Column('mileage_km', sa.Integer(), nullable=True),
    sa.Column('color', sa.String(length=30), nullable=True),
    sa.Column('price', sa.Numeric(precision=15, scale=2), nullable=True),
    sa.Column('status', sa.String(length=25), server_default='available', nullable=False),
    sa.Column('images', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('features', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('damage_report', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('trust_score', sa.Integer(), nullable=True),
    sa.Column('history', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('location', sa.String(length=100), nullable=True),
    sa.Column('feature_vector', Vector(24), nullable=True),
    sa.Column('search', postgresql.TSVECTOR(), sa.Computed("setweight(to_tsvector('english', coalesce(make, '') || ' ' || coalesce(model, '')), 'A') || setweight(to_tsvector('english', coalesce(trim, '')), 'B') || setweight(to_tsvector('english', immutable_array_to_string(features, ' ')), 'B') || setweight(to_tsvector('english', coalesce(description, '')), 'C')", persisted=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("condition IN ('salvage','rough','clean','excellent','upgraded')", name=op.f('ck_vehicles_condition')),
    sa.CheckConstraint("jsonb_typeof(history) = 'array'", name=op.f('ck_vehicles_history_is_array')),
    sa.CheckConstraint("status IN ('available','in_auction','pending_settlement','in_settlement','owned','in_service','listed','sold','archived')", name=op.f('ck_vehicles_status')),
    sa.CheckConstraint("vin ~ '^[A-HJ-NPR-Z0-9]{17}$'", name=op.f('ck_vehicles_vin_format')),
    sa.CheckConstraint('mileage_km IS NULL OR mileage_km >= 0', name=op.f('ck_vehicles_mileage_non_negative')),
    sa.CheckConstraint('price IS NULL OR price > 0', name=op.f('ck_vehicles_price_positive')),
    sa.CheckConstraint('trust_score BETWEEN 0 AND 100', name=op.f('ck_vehicles_trust_score')),
    sa.ForeignKeyConstraint(['catalog_id'], ['vehicle_catalog.id'], name=op.f('fk_vehicles_catalog_id_vehicle_catalog')),
    sa.ForeignKeyConstraint(['listed_by'], ['users.id'], name=op.f('fk_vehicles_listed_by_users')),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_vehicles_owner_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vehicles')),
    sa.UniqueConstraint('vin', name=op.f('uq_vehicles_vin'))
    )
    op.create_index('ix_vehicles_catalog_id', 'vehicles', ['catalog_id'], unique=False)
    op.create_index('ix_vehicles_feature_vector', 'vehicles', ['feature_vector'], unique=False, postgresql_using='hnsw', postgresql_ops={'feature_vector': 'vector_l2_ops'}, postgresql_with={'m': 8, 'ef_construction': 32})
    op.create_index('ix_vehicles_features', 'vehicles', ['features'], unique=False, postgresql_using='gin')
    op.create_index('ix_vehicles_listed_by', 'vehicles', ['listed_by'], unique=False)
    op.create_index('ix_vehicles_make_model', 'vehicles', [sa.literal_column('lower(make)'), sa.literal_column('lower(model)')], unique=False)
    op.create_index('ix_vehicles_newest', 'vehicles', ['created_at', 'id'], unique=False)
    op.create_index('ix_vehicles_owner_id', 'vehicles', ['owner_id'], unique=False)
    op.create_index('ix_vehicles_price', 'vehicles', ['price', 'id'], unique=False)
    op.create_index('ix_vehicles_search', 'vehicles', ['search'], unique=False, postgresql_using='gin')
    op.create_index('ix_vehicles_status', 'vehicles', ['status'], unique=False)
    op.create_index('ix_vehicles_year', 'vehicles', ['year', 'id'], unique=False)
    # Vehicles are never deleted (soft delete is status 'archived'), and their history only grows.
    op.execute(
        """
        CREATE FUNCTION guard_vehicle_history() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                RAISE EXCEPTION 'vehicles are archived, never deleted'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF jsonb_array_length(NEW.history) < jsonb_array_length(OLD.history)
               OR (SELECT coalesce(jsonb_agg(e ORDER BY i), '[]'::jsonb)
                   FROM jsonb_array_elements(NEW.history) WITH ORDINALITY AS t(e, i)
                   WHERE i <= jsonb_array_length(OLD.history)) IS DISTINCT FROM OLD.history
            THEN
                RAISE EXCEPTION 'vehicle history is append-only'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER vehicles_history_append_only BEFORE UPDATE OR DELETE ON vehicles "
        "FOR EACH ROW EXECUTE FUNCTION guard_vehicle_history()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER vehicles_history_append_only ON vehicles")
    op.execute("DROP FUNCTION guard_vehicle_history()")
    op.drop_index('ix_vehicles_year', table_name='vehicles')
    op.drop_index('ix_vehicles_status', table_name='vehicles')
    op.drop_index('ix_vehicles_search', table_name='vehicles', postgresql_using='gin')
    op.drop_index('ix_vehicles_price', table_name='vehicles')
    op.drop_index('ix_vehicles_owner_id', table_name='vehicles')
    op.drop_index('ix_vehicles_newest', table_name='vehicles')
    op.drop_index('ix_vehicles_make_model', table_name='vehicles')
    op.drop_index('ix_vehicles_listed_by', table_name='vehicles')
    op.drop_index('ix_vehicles_features', table_name='vehicles', postgresql_using='gin')
    op.drop_index('ix_vehicles_feature_vector', table_name='vehicles', postgresql_using='hnsw', postgresql_ops={'feature_vector': 'vector_l2_ops'})
    op.drop_index('ix_vehicles_catalog_id', table_name='vehicles')
    op.drop_table('vehicles')
    op.drop_index('uq_vehicle_catalog_identity', table_name='vehicle_catalog')
    op.drop_index('ix_vehicle_catalog_years', table_name='vehicle_catalog')
    op.drop_index('ix_vehicle_catalog_make_model', table_name='vehicle_catalog')
    op.drop_table('vehicle_catalog')
    op.execute("DROP FUNCTION immutable_array_to_string(text[], text)")
