"""Benchmarks: each area runs homekeep and the reference tool on the same data."""
