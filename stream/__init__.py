"""The processes of survey-alerts, each in its own package, over a few shared layers.

Processes: ``worker`` (owns all state; runs the stages of ``agents``), ``notifier``
(delivers to people and systems), ``inbox`` (the agents' web page and API), ``digest`` and
``replay`` (commands over stored data and topic history). Shared layers below them:
``settings``, ``metrics``, ``errors``, ``console``, ``pipeline``, ``supervise`` (restarting a
loop), ``deadline`` and ``watchdog`` (bounded waits, progress), ``kafka`` (security, topics,
partitioning), ``destinations`` (one sender per destination kind) and ``readmodel`` (the store
the inbox feeds and the digest reads). ``tools`` (bench, generator, demo, local
brokers) is apart from production. ``cli`` is the command group that gathers them all.

May import: ``schemas``, ``alerts`` and ``agents`` (the worker's composition root only). No
process package imports another; nothing but ``cli`` imports ``tools`` (import-linter's
contracts in pyproject.toml check both in CI).
"""
