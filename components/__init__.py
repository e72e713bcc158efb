"""The pipeline's stages as plain typed functions (data, audit, train, evaluate, report)."""
