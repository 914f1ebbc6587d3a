"""Who added each example (a signed-in person's email; NULL for the local user), and the app's
settings that owners change for everyone (the default model).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("examples") as table:  # SQLite alters a table by copying it
        table.add_column(sa.Column("author", sa.Text))
        table.create_index("examples_author", ["author"])
    op.create_table(
        "settings",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("settings")
    with op.batch_alter_table("examples") as table:
        table.drop_index("examples_author")
        table.drop_column("author")
