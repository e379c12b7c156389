"""Flow's benchmark harness: `make bench` (full) and `make bench-smoke` (tiny, in `make test`).

An isolated fleet, seeded at scale, driven by an open-loop load generator with HDR
histograms; the scenarios and the figures they must show are issue 6's. See
bench/README.md.
"""
