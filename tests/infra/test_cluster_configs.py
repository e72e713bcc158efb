"""Contract tests for the cluster configs in infra/: they parse, agree on the image, run real CLI commands, ask for GPUs."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
IMAGE = "ghcr.io/your-org/clip-pipeline:0.1.0"
CONFIGS = sorted(p for p in INFRA.rglob("*") if p.suffix in {".yaml", ".yml", ".json"})


def _load(path: Path) -> list:
    text = path.read_text()
    return [json.loads(text)] if path.suffix == ".json" else [d for d in yaml.safe_load_all(text) if d is not None]


def _doc(rel: str, kind: str | None = None) -> dict:
    docs = _load(INFRA / rel)
    return next(d for d in docs if kind is None or d.get("kind") == kind)


def _walk(obj, key: str):
    """Every value stored under `key` anywhere in a nested dict/list."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, key)


def _assert_cli(command: str) -> None:
    """`clip-pipeline ...` parses with the real parser: no invented subcommand or flag."""
    from flows.cli import build_parser

    argv = shlex.split(command)
    assert argv[0] == "clip-pipeline", command
    try:
        build_parser().parse_args(argv[1:])
    except SystemExit as e:  # argparse exits on an unknown flag or subcommand
        raise AssertionError(f"not a valid clip-pipeline command: {command}") from e


def test_every_config_parses() -> None:
    assert len(CONFIGS) >= 9  # 4 DeepSpeed, Ray launcher, RayJob, RayCluster, Prefect template + prefect.yaml
    for path in CONFIGS:
        assert _load(path), f"{path} is empty"


def test_every_image_is_the_project_image() -> None:
    images = []
    for path in CONFIGS:
        for doc in _load(path):
            images += [v for v in _walk(doc, "image") if isinstance(v, str) and not v.startswith("{{")]
            images += [v["default"] for v in _walk(doc, "image") if isinstance(v, dict) and "default" in v]
    assert images and set(images) == {IMAGE}
    dockerfile = (INFRA / "Dockerfile").read_text()
    assert IMAGE in dockerfile
    from importlib.metadata import version

    assert f"rayproject/ray:{version('ray')}-" in dockerfile  # the image's Ray is the one pinned here
    for rel in ("kuberay/rayjob.yaml", "kuberay/raycluster.yaml"):
        doc = _load(INFRA / rel)[0]
        assert next(_walk(doc, "rayVersion")) == version("ray")


def test_rayjob_entrypoint_is_a_real_train_command() -> None:
    job = _doc("kuberay/rayjob.yaml", "RayJob")
    entry = job["spec"]["entrypoint"]
    _assert_cli(entry)
    assert shlex.split(entry)[-1] == "train"
    from flows.params import load_params

    sets = [a for a in shlex.split(entry) if "=" in a and a.startswith("train.")]
    params = load_params(ROOT / "params.yaml", sets)  # every override is a real, valid key
    assert params.train.use_gpu and params.train.workers >= 2


def test_commands_in_comments_are_real() -> None:
    """The usage lines the configs document run real subcommands with real flags."""
    found = 0
    for path in [*CONFIGS, INFRA / "README.md"]:
        text = path.read_text()
        if path.suffix != ".md":  # the configs' own commands are checked above; here, their comments
            text = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
        text = re.sub(r"\\\s*\n\s*#?\s*", " ", text)  # join `\`-continued lines, also in comments
        for m in re.finditer(r"(?<![\w/.-])clip-pipeline(?=[ \t])[^`\n#|;&()]*", text):  # up to the end of the command
            _assert_cli(m.group(0).strip())
            found += 1
    assert found >= 3


def test_gpu_worker_groups_have_gpus() -> None:
    aws = _doc("ray/cluster-aws.yaml")
    assert aws["available_node_types"]["gpu_worker"]["resources"]["GPU"] >= 1
    assert aws["available_node_types"][aws["head_node_type"]]["resources"]["CPU"] == 0  # no workers on the head
    for rel in ("kuberay/rayjob.yaml", "kuberay/raycluster.yaml"):
        groups = next(_walk(_load(INFRA / rel)[0], "workerGroupSpecs"))
        gpu = [g for g in groups if g["groupName"] == "gpu"]
        assert gpu, rel
        for c in gpu[0]["template"]["spec"]["containers"]:
            assert int(c["resources"]["limits"]["nvidia.com/gpu"]) >= 1, rel


def test_prefect_deployments_use_the_k8s_pool_and_a_real_flow() -> None:
    template = _doc("prefect/k8s-base-job-template.json")
    assert {"job_configuration", "variables"} <= set(template)
    manifest = template["job_configuration"]["job_manifest"]
    assert manifest["kind"] == "Job" and manifest["spec"]["backoffLimit"] == 0
    props = template["variables"]["properties"]
    referenced = set(re.findall(r"{{ (\w+) }}", json.dumps(template["job_configuration"])))
    assert referenced <= set(props), f"template variables without a definition: {referenced - set(props)}"

    project = _doc("prefect/prefect.yaml")
    import importlib

    from flows.params import load_params

    for dep in project["deployments"]:
        module, func = dep["entrypoint"].split(":")
        flow = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), func)
        assert flow.name == "clip-pipeline"
        assert dep["work_pool"]["name"] == "clip-k8s"
        load_params(ROOT / "params.yaml", dep["parameters"]["overrides"])  # overrides are valid keys


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(INFRA)))
def test_dashboard_not_on_all_interfaces_without_an_auth_note(path: Path) -> None:
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if "dashboard" in line and "0.0.0.0" in line:
            around = " ".join(lines[max(0, i - 4) : i + 1]).lower()
            assert "auth" in around, f"{path}:{i + 1} binds the dashboard to 0.0.0.0 with no note on authentication"


def test_zero3_config_shards_parameters() -> None:
    z3 = _doc("deepspeed/zero3.json")
    assert z3["zero_optimization"]["stage"] == 3
    assert z3["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"]  # a whole model can be exported
