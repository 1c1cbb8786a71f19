"""carebot's benchmarks: ``make bench`` (``python -m benchmarks.run``) runs them all.

Every figure is measured in the run that prints it, beside its target and beside the naive way
it replaces.
"""
