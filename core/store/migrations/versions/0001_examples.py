"""Examples users labelled, and the files moved in.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = sa.inspect(op.get_bind()).get_table_names()
    if "examples" in tables:  # a corrections.sqlite of the app before Alembic: the same table
        if "schema_version" in tables:
            op.drop_table("schema_version")
    else:
        op.create_table(
            "examples",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("image_sha256", sa.String(64), nullable=False),
            sa.Column("label", sa.Integer, sa.CheckConstraint("label BETWEEN 0 AND 9"), nullable=False),
            sa.Column("predicted", sa.Integer, sa.CheckConstraint("predicted BETWEEN 0 AND 9")),
            sa.Column("confidence", sa.Float, sa.CheckConstraint("confidence BETWEEN 0 AND 1")),
            sa.Column("checkpoint", sa.Text),
            sa.Column("source", sa.Text, nullable=False),
            sa.Column("created_at", sa.Text, nullable=False),
            sa.Column("png", sa.LargeBinary, nullable=False),
            sa.Column("input28", sa.LargeBinary, nullable=False),
            sa.UniqueConstraint("image_sha256", "label"),
        )
        op.create_index("examples_label", "examples", ["label"])
    op.create_table(
        "moved_in",
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("at", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("moved_in")
    op.drop_table("examples")
