"""Outside systems behind one small interface: a sender per destination kind.

Owns: the adapters (``senders``: Standard Webhooks, Slack, Teams, e-mail, console), each
taking a delivery and returning an outcome (delivered, retry after N s, disabled,
rejected), and sending one document directly (``direct``: ``notify test``, ``digest
--send``, the destination checks of ``rules check``). What each kind receives is rendered
by ``alerts.notify.render``; the notifier process (``stream.notifier``) adds the state,
retries and rate limits around these senders.

May import: ``schemas``, ``alerts`` and ``stream.errors``; no process.
"""
