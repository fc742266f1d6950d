"""Benchmarks: throughput and memory of the producer and the workers on synthetic files of any size."""
