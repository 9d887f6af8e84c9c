"""``survey-alerts digest``: the executive update and escalation review, from stored data.

``report`` reads a period (and the one before) from the inbox's read model, computes it with
``alerts.digest`` and renders Markdown or a self-contained HTML page (inline SVG charts,
print-friendly CSS; templates are package data); ``--send`` hands it to a notifier destination.
"""
