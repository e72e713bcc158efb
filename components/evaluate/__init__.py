"""Evaluation stage: embedding cache, zero-shot classification and retrieval, linear probe, robustness."""
