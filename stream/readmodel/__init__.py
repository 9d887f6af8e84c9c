"""The read model of the output topics: alerts, follow-up state, escalations and window snapshots.

Owns: the tables, their versioned migrations and every query (``db``: SQLite by default,
PostgreSQL by URL). It is disposable: upserts keyed by ids, rebuilt from the topics. The
inbox's feed writes it; the inbox's pages and the digest read it.

May import: ``schemas``, ``alerts`` and ``stream.errors``; no process.
"""
