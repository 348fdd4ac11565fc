"""Benchmarks behind `jointml bench ...`: each prints JSON figures with the plaintext baseline."""
