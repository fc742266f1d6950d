"""The operator's side: CLI, embedded services, runs, status, dead-letter replay, Flower."""
