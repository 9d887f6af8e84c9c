"""What every process uses to talk to Kafka: connection security, topics, key partitioning.

Owns: TLS/SASL options for each client library and the one-line explanation of a refused
connection (``security``), creating and checking the service's topics (``topics``), and the
contract's key-to-partition rule (``partitioning``).

May import: ``schemas``, ``alerts``, ``stream.settings`` and ``stream.errors``; no process.
"""
