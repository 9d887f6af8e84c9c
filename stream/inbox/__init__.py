"""The inbox process (``survey-alerts inbox``): a web page and a JSON API where agents close the loop.

Owns: the feed that keeps the read model (``stream.readmodel``) up to date from
``recovery-alerts``, ``escalations.*``, ``followup-events`` and ``feedback-windows`` in the
inbox's own consumer group (``feed``); the pages, the API and the actions produced to
``followup-actions`` (``web``; the page shows the new state when the worker's
``followup-events`` bring it back); login, sessions and CSRF (``auth``); start-up (``main``)
and its commands (``cli``). Templates and the stylesheet are package data.

May import: ``schemas``, ``alerts``, ``stream.readmodel`` and the shared ``stream`` layers;
never another process's package nor ``stream.tools``.
"""
