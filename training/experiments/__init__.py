"""One-off experiment scripts; what they write lies under results/ (which holds outputs only).

Run from the repository root, e.g. ``bash training/experiments/stage7.sh`` (writes
results/training/stage7/).
"""
