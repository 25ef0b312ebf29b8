"""Latency and memory measurement: stage timings (their percentiles: :mod:`mtsc_sdr.report`), peak
resident memory, weight bytes, Jetson memory from tegrastats; ``mtsc-sdr bench`` (:mod:`.cli`)."""
