"""Speed and cost measurements. Run from the repository root as modules, e.g.
``python -m benchmarks.bench_inference``; each writes its figures, with the command and the
machine (colorizer.provenance), under results/."""
