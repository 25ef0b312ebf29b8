"""Latency and memory measurement: percentiles of stage timings, peak resident memory, weight bytes,
Jetson memory from tegrastats; ``mtsc-sdr bench`` (:mod:`.cli`)."""
