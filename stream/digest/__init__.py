"""The digest command (``survey-alerts digest``): the executive update and escalation review.

Owns: reading a period (and the one before) from the read model (``stream.readmodel``),
computing it with the pure ``alerts.digest`` and rendering Markdown or a self-contained HTML
page with inline SVG charts (``report``, ``charts``; templates are package data), and its
command (``cli``; ``--send`` hands it to a destination of ``stream.destinations``).

May import: ``schemas``, ``alerts``, ``stream.readmodel``, ``stream.destinations`` and the
shared ``stream`` layers; never another process's package nor ``stream.tools``.
"""
