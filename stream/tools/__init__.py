"""Development and evaluation tools, apart from production: nothing in production imports them.

Owns: the benchmark (``bench``), the traffic generator and producer (``generate``,
``produce``), the demo (``demo``), local brokers (``brokers``: Apache Kafka and tansu) and
a local webhook receiver (``receiver``), with their commands (``cli``).

May import anything in the project. Only the command group (``stream.cli``) imports it.
"""
