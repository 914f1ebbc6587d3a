"""The store's tables (SQLAlchemy Core). Changing them means a new migration in migrations/versions."""

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

examples = Table(
    "examples",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("image_sha256", String(64), nullable=False),
    Column("label", Integer, CheckConstraint("label BETWEEN 0 AND 9"), nullable=False),
    Column("predicted", Integer, CheckConstraint("predicted BETWEEN 0 AND 9")),
    Column("confidence", Float, CheckConstraint("confidence BETWEEN 0 AND 1")),
    Column("checkpoint", Text),
    Column("source", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("png", LargeBinary, nullable=False),
    Column("input28", LargeBinary, nullable=False),
    Column("author", Text),  # the signed-in person's email; NULL for the local user (and the CLI)
    UniqueConstraint("image_sha256", "label"),
    Index("examples_label", "label"),
    Index("examples_author", "author"),
)

# Files whose contents were copied in once (an older app's corrections.sqlite): never twice.
moved_in = Table(
    "moved_in",
    metadata,
    Column("source", Text, primary_key=True),
    Column("rows", Integer, nullable=False),
    Column("at", Text, nullable=False),
)

# Models trained or fine-tuned in the app or by the CLI: the checkpoint file's bytes, loaded with
# torch.load(weights_only=True) like any checkpoint (core.checkpoint names them store:NAME).
models = Table(
    "models",
    metadata,
    Column("name", Text, primary_key=True),
    Column("created_at", Text, nullable=False),
    Column("checkpoint", LargeBinary, nullable=False),
)

# What owners set for everyone, by key (DEFAULT_MODEL: the model every new session starts with).
settings = Table(
    "settings",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)
