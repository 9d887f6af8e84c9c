"""``survey-alerts bench``: throughput against baselines, latency, memory and restart time.

``run`` drives a whole run (brokers, load, workers, the report); ``faust_baselines`` are the
bare and idiomatic Faust pipelines measured beside the service; ``inprocess`` measures the
intake and its floor without a broker; ``quix_peer`` is the Quix Streams peer; ``counter``
is the count that ends the baselines' and the peer's subprocesses.
"""
