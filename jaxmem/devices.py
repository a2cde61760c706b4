"""Runs spread over every device: a 1-D mesh whose axis ``runs`` shards a bucket's runs.

On one host the mesh holds every local device (several GPUs, or CPU devices made with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``). After
``jax.distributed.initialize()`` it holds the devices of every process, each process
runs the same program on its own devices, and ``to_host`` gathers the results to
every process.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

RUNS = "runs"
SPLIT = PartitionSpec(RUNS)  # leading (run) axis split over the mesh
WHOLE = PartitionSpec()  # a full copy on every device


def run_mesh(limit: int | None = None) -> Mesh:
    """A 1-D mesh with axis ``runs`` over ``jax.devices()`` (all processes' devices), or
    over the first ``limit`` of them."""
    return Mesh(np.array(jax.devices()[:limit]), (RUNS,))


def by_run(mesh: Mesh) -> NamedSharding:
    """Leading (run) axis split over the mesh, the rest whole."""
    return NamedSharding(mesh, SPLIT)


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of the mesh."""
    return NamedSharding(mesh, WHOLE)


def per_device(fn, mesh: Mesh, in_specs: tuple, **jit_options):
    """``fn`` jitted over ``jax.shard_map``: each device runs it on its share of the
    arguments with spec ``SPLIT`` and a full copy of those with ``WHOLE``; the outputs
    stay split by run."""
    mapped = jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=SPLIT)
    return jax.jit(mapped, in_shardings=tuple(NamedSharding(mesh, spec) for spec in in_specs),
                   out_shardings=by_run(mesh), **jit_options)


def padded_count(n_runs: int, mesh: Mesh) -> int:
    """``n_runs`` rounded up to a multiple of the mesh's device count."""
    return -(-n_runs // mesh.size) * mesh.size


def pad_runs(tree, n_padded: int):
    """Extend every leaf's run axis to ``n_padded`` by repeating the last run: padding
    runs train like a real one (no NaN from empty data) and are dropped afterwards."""
    n_runs = jax.tree.leaves(tree)[0].shape[0]
    index = np.minimum(np.arange(n_padded), n_runs - 1)
    return jax.tree.map(lambda a: a[index], tree)


def to_host(tree):
    """Numpy copies of (possibly multi-process) global arrays, on every process."""
    return multihost_utils.process_allgather(tree, tiled=True)


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """``jax.distributed.initialize``: what is not given is detected from the cluster
    (SLURM, Open MPI, Kubernetes, Cloud TPU) or ``JAX_COORDINATOR_ADDRESS``."""
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
    except (ValueError, RuntimeError) as err:
        raise ValueError(f"--distributed: {err} Outside SLURM, Open MPI, Kubernetes or Cloud TPU, give "
                         "--coordinator HOST:PORT --num-processes N --process-id I (the same "
                         "coordinator and N for every process, I = 0..N-1)") from err


def environment() -> dict:
    """Backend, devices and CPU model, for ``summary.json`` and benchmarks."""
    return {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
            "cpu": cpu_model(), "jax": jax.__version__}


def device_info() -> dict:
    """``backend``, ``devices`` and ``cpu``: the fields every ``summary.json`` starts with."""
    env = environment()
    return {"backend": env["backend"], "devices": env["devices"], "cpu": env["cpu"]}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()
