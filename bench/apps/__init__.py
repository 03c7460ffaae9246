"""The processes the benchmarks start: ours (as shipped), and the baselines beside them."""
