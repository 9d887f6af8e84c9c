"""Notifications, the pure part: which destinations a message goes to, what each receives, when to retry.

``rules`` reads the destinations and notify rules of the routing rules file; ``render``
builds each destination kind's body (Standard Webhooks envelope, Slack Block Kit,
Teams Adaptive Card, e-mail); ``retry`` classifies answers and spaces out attempts.
The senders are ``stream.destinations``; the process that consumes the output topics and
delivers is ``stream.notifier``.

May import: ``schemas`` and ``alerts``.
"""
