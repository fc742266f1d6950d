"""What the producer and the workers both import: settings, errors, the entity registry,
the target schema, envelopes, and the wave dispatcher."""
