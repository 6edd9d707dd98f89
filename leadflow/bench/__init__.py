"""`leadflow bench` / `make bench`: throughput, freshness and query latency, side by side.

Each measurement lives in its own module; `run.py` runs them on the same
simulated events, prints a table and writes the figures to a JSON file so
runs can be compared across commits. No timed unit tests: these are figures.
"""
