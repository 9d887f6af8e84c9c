"""Pure domain logic: everything the service decides, with no I/O and no Faust.

Owns: the pipeline a batch goes through (``pipeline``: validation, customer state, detection,
escalation, routing), scores and rolling windows (``scores``, ``windows``, ``snapshots``,
``feedback``), follow-ups and their SLA clock (``followup``), dead letters (``deadletters``),
ids (``ids``), the executive digest's figures (``digest``), replay's report (``replay``) and
notifications' pure part (``notify``: rules, rendering and escaping, retry policy).
Unit-testable in microseconds.

May import: ``schemas``, the standard library, pydantic, orjson and the rules-file parsers (no
Faust, Kafka client, HTTP or database).
"""
