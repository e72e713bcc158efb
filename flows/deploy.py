"""Serve the deployments `clip-pipeline/full` and `clip-pipeline/retrain` (cron from params) from this process.

`prefect deployment run clip-pipeline/full` then runs the whole pipeline in this serving process,
against whatever Prefect API `PREFECT_API_URL` points to (the local server the project's script
starts, or a remote one).
"""

from __future__ import annotations

from pathlib import Path

from flows.params import load_params


def build_deployments(params_path: str = "params.yaml") -> list:  # list[RunnerDeployment]
    """The two deployments, parameterised with an absolute params path so the server can run them anywhere."""
    from flows.pipeline import clip_pipeline

    params_path = str(Path(params_path).resolve())
    cron = load_params(params_path).pipeline.retrain_cron
    full = clip_pipeline.to_deployment(
        name="full",
        parameters={"params_path": params_path},
        description="The whole pipeline with params.yaml; override per run with overrides=['train.steps=50'].",
        tags=["clip-pipeline"],
    )
    retrain = clip_pipeline.to_deployment(
        name="retrain",
        cron=cron,
        parameters={"params_path": params_path, "only_if_data_changed": True},
        description=f"Scheduled retraining ({cron}): runs only when the data version changed; the registry gate "
        "keeps a worse model from replacing the champion.",
        tags=["clip-pipeline", "scheduled"],
    )
    return [full, retrain]


def serve(params_path: str = "params.yaml") -> None:
    """Block, serving both deployments (Ctrl-C to stop)."""
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(params_path))
