"""The follow-up inbox: a web page and a JSON API over a read model of the output topics.

``db`` is the read model (SQLite by default, PostgreSQL by URL), fed by ``feed`` from
``recovery-alerts``, ``escalations.*`` and ``followup-events`` in the inbox's own
consumer group. ``web`` serves the queue view, the alert detail with its actions, the
escalations view and ``/api/v1``; every action is produced to ``followup-actions`` and
the page shows the new state when the worker's ``followup-events`` bring it back.
``auth`` is the login (users file with argon2 hashes, API tokens, or a trusted proxy
header), sessions and CSRF. Templates and the stylesheet are package data.
"""
