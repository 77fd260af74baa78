"""seedsvc benchmarks: `python -m benchmarks` runs them all and writes benchmarks/results/report.md."""
