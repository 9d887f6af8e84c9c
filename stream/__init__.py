"""Runtime wiring: settings, the Faust app, topics, codec, metrics, brokers and the CLI."""
