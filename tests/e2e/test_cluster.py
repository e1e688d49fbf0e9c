"""The cluster YAMLs are valid: the autoscaler config against the schema shipped inside the ray
package, the KubeRay RayJob parsed and checked for its GPU worker group and entrypoint."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import ray
import yaml
from conftest import REPO

CLUSTER = REPO / "cluster"


def test_autoscaler_yaml_validates_against_rays_schema() -> None:
    schema_path = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"
    schema = json.loads(schema_path.read_text())
    config = yaml.safe_load((CLUSTER / "aws-gpu.yaml").read_text())
    jsonschema.validate(config, schema)
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}
    assert any(t["resources"].get("GPU", 0) >= 1 for t in types.values())


def test_kuberay_rayjob_parses_with_gpu_workers_and_runtime_env() -> None:
    job = yaml.safe_load((CLUSTER / "kuberay-rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["entrypoint"].startswith("python -m workflows.run --manifest s3://")
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert any("nst-batch" in p for p in runtime_env["pip"])
    cluster = spec["rayClusterSpec"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (group,) = cluster["workerGroupSpecs"]
    (container,) = group["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
