"""Runtime wiring: settings, the Faust app, batch consumer, delivery, state, topics, metrics and the CLI."""
