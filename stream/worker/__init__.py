"""The worker process (``survey-alerts worker``): owns all state; runs the stages of ``agents``.

Owns: the Faust app (``app``), its composition root (``main``), the interface the stages are
written against (``runtime``), the batch consumer (``batching``), per-partition record
batches (``delivery``), changelog-backed state (``state``, ``sweep``), the output gate with
its dead letters (``outputs``) and the yielding of long loops (``pacing``).
Reads the input topics; writes every output topic and its changelogs.

May import: ``schemas``, ``alerts``, ``agents`` (``main`` only) and the shared ``stream``
layers (``settings``, ``metrics``, ``errors``, ``stream.kafka``, ``stream.pipeline``); never
another process's package nor ``stream.tools``.
"""
