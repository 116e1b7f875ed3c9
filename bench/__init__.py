"""Benchmarks (`make bench`): each module's ``run()`` returns figures for bench/results.json."""
