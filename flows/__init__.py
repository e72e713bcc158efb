"""Prefect flows, deployments and the `clip-pipeline` CLI: wiring only."""
