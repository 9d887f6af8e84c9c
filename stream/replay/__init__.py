"""``survey-alerts replay``: what a rule or threshold change would have done on past traffic.

Owns: reading the input topics' history, re-running the real pipeline in memory with a
virtual clock and comparing with what was raised (``run``; the report itself is the pure
``alerts.replay``), and its command (``cli``). Writes nothing live (``--emit`` only to a
topic of its own).

May import: ``schemas``, ``alerts`` and the shared ``stream`` layers; no other process.
"""
