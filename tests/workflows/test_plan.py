"""How many workers of what size `nst run` starts (workflows.batch.cluster.plan_workers), on a
local Ray with 2 CPUs and 2 fake GPUs; and a worker no node can hold."""

from __future__ import annotations

import pytest

from workflows.batch.cluster import plan_workers
from workflows.batch.config import RunConfig
from workflows.errors import InputError


def config(**flags: object) -> RunConfig:
    return RunConfig("m.parquet", "out", **flags)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("flags", "plan"),
    [
        ({}, (1.0, 2)),  # one worker per GPU
        ({"gpus_per_task": 0.5}, (0.5, 4)),
        ({"gpus_per_task": 0}, (0, 2)),  # one per CPU
        ({"num_workers": 3}, (1.0, 3)),  # more than fit now: an autoscaler may add nodes
        ({"max_in_flight": 1}, (1.0, 1)),
    ],
)
def test_workers_fit_the_cluster(ray_cluster, flags, plan, capsys) -> None:
    assert plan_workers(config(**flags)) == plan
    assert capsys.readouterr().err == ""


def test_a_worker_no_node_can_hold(ray_cluster, capsys) -> None:
    """A local Ray that nst run started never grows: an error before any work. Any other
    cluster may have an autoscaler: a warning, and the run waits for a node."""
    cfg = config(cpus_per_task=64)
    what = ("no node of the Ray cluster has room for one worker (1 GPU and 64 CPU: "
            "--gpus-per-task, --cpus-per-task); the largest has 2 GPU and 2 CPU")  # fmt: skip
    with pytest.raises(InputError) as refused:
        plan_workers(cfg, fixed=True)
    assert str(refused.value) == f"{what} (the local Ray that nst run started: lower them)"
    assert plan_workers(cfg) == (1.0, 2)
    assert capsys.readouterr().err.strip() == (
        f"WARNING: {what}; waiting for the cluster's autoscaler to add one"
    )


def test_no_gpu_runs_on_cpu_locally_and_is_refused_on_a_cluster(
    ray_cluster, monkeypatch, capsys
) -> None:
    """Ray sees no GPU and --num-workers is not given: the local Ray nst run started (a laptop)
    runs on CPU; a cluster it connected to may be an autoscaling one with no GPU node up yet,
    where one CPU worker would run the whole sweep: refused, naming both ways on."""
    import ray

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    assert plan_workers(config(), fixed=True) == (0, 2)
    assert capsys.readouterr().err.strip() == (
        "WARNING: Ray sees no GPU on this machine; running on CPU (--gpus-per-task 0)"
    )
    with pytest.raises(InputError, match=r"^the Ray cluster has no GPU now: --num-workers N "):
        plan_workers(config())
    assert plan_workers(config(gpus_per_task=0)) == (0, 2)
    assert plan_workers(config(num_workers=4)) == (1.0, 4)
    assert capsys.readouterr().err == ""
