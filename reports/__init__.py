"""Report generators: the tables and figures of results/ that compare models on photos (per
source, the check set, the hints curve, outputs before and after a change). Run from the
repository root as modules, e.g. ``python -m reports.per_source``; timings live in
benchmarks/."""
