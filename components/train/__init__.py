"""Training stage: the per-worker loop Ray runs, its data pipeline, optimiser, schedule and checkpoints."""
