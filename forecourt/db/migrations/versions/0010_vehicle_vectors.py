"""vehicle vectors indexed after commit: the HNSW index moves from vehicles.feature_vector to
vehicle_vectors (an indexed copy), vehicle_vector_queue holds the vehicles not copied yet

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('vehicle_vector_queue',
    sa.Column('vehicle_id', sa.UUID(), nullable=False),
    sa.PrimaryKeyConstraint('vehicle_id', name=op.f('pk_vehicle_vector_queue'))
    )
    op.create_table('vehicle_vectors',
    sa.Column('vehicle_id', sa.UUID(), nullable=False),
    sa.Column('feature_vector', Vector(24), nullable=False),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicles.id'], name=op.f('fk_vehicle_vectors_vehicle_id_vehicles')),
    sa.PrimaryKeyConstraint('vehicle_id', name=op.f('pk_vehicle_vectors'))
    )
    # Every vector is copied now (the index is built once, after the copy): nothing is pending.
    op.execute(
        "INSERT INTO vehicle_vectors (vehicle_id, feature_vector) "
        "SELECT id, feature_vector FROM vehicles WHERE feature_vector IS NOT NULL"
    )
    op.create_index('ix_vehicle_vectors_feature_vector', 'vehicle_vectors', ['feature_vector'], unique=False, postgresql_using='hnsw', postgresql_ops={'feature_vector': 'vector_l2_ops'}, postgresql_with={'m': 8, 'ef_construction': 32})
    op.drop_index('ix_vehicles_feature_vector', table_name='vehicles', postgresql_using='hnsw', postgresql_ops={'feature_vector': 'vector_l2_ops'})


def downgrade() -> None:
    # vehicles.feature_vector always holds the current vectors (the copies and the queue are
    # derived from it): indexing it again loses nothing.
    op.create_index('ix_vehicles_feature_vector', 'vehicles', ['feature_vector'], unique=False, postgresql_using='hnsw', postgresql_ops={'feature_vector': 'vector_l2_ops'}, postgresql_with={'m': 8, 'ef_construction': 32})
    op.drop_index('ix_vehicle_vectors_feature_vector', table_name='vehicle_vectors', postgresql_using='hnsw', postgresql_ops={'feature_vector': 'vector_l2_ops'})
    op.drop_table('vehicle_vectors')
    op.drop_table('vehicle_vector_queue')
