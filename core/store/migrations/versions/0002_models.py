"""Models trained in the app or by the CLI, as checkpoint bytes.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("checkpoint", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("models")
