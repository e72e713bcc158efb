"""Audit stage: training-set dedup and the train/eval overlap audit (paper Section 5)."""
