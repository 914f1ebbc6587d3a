"""The store: what users teach the app, in one database that outlives the app's disk.

SQLite, embedded, by default (`data/store.sqlite`); PostgreSQL for a deployment, chosen by a URL
(`core.store.engine.store_url`). SQLAlchemy Core, schema changes by Alembic migrations, one
transaction per change. Free of Streamlit and torch, so that the CLI's store verbs start fast.
"""

from core.store.engine import StoreError, StoreUnavailable, describe, embedded, read, store_url, write

__all__ = ["StoreError", "StoreUnavailable", "describe", "embedded", "read", "store_url", "write"]
