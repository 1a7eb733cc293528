"""Benchmarks of simple-otp: cold start, round trips, own CPU, load, bundle and package size.

Run them with ``make bench``; the results are in bench/RESULTS.md.
"""
