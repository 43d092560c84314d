"""text embeddings: vehicles.text_embedding (OpenAI), filled by a background job

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('vehicles', sa.Column('text_embedding', Vector(256), nullable=True))
    op.create_index('ix_vehicles_needs_embedding', 'vehicles', ['id'], unique=False, postgresql_where=sa.text('text_embedding IS NULL'))
    op.create_index('ix_vehicles_text_embedding', 'vehicles', ['text_embedding'], unique=False, postgresql_using='hnsw', postgresql_ops={'text_embedding': 'vector_cosine_ops'})


def downgrade() -> None:
    op.drop_index('ix_vehicles_text_embedding', table_name='vehicles', postgresql_using='hnsw', postgresql_ops={'text_embedding': 'vector_cosine_ops'})
    op.drop_index('ix_vehicles_needs_embedding', table_name='vehicles', postgresql_where=sa.text('text_embedding IS NULL'))
    op.drop_column('vehicles', 'text_embedding')
