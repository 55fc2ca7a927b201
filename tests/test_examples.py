"""Every script of `examples/` runs end to end in its `--fast` mode (a subprocess each).

The scripts' fast modes are small enough that importing JAX and compiling dominate, which are
single-threaded: the module starts the selected scripts together, as many at a time as the
machine has cores (the `examples` fixture), and each test waits for its own script's result.
Each script still runs alone in its own process, with the same checks as one at a time.

Most of them run only with the tests marked `slow` (`python -m pytest -m slow`, a CI step of
its own), to keep the default run within its budget; the default run keeps the three that show
the library's core tasks (a new SDE, a plain-JAX score, a k-diffusion port) and checks the
others' code paths in the unit tests:

- `digits_diffusion.py`: its `--fast` mode is already a 10-step, 4-channel U-Net, and still
  takes about 30 s, nearly all of it compiling the U-Net (its initialisation, the training
  step and the sampler); a smaller mode would no longer be the example's model.
- `demo.py`: the default run already runs it in-process, through `gpm-sde demo --fast`
  (`tests/test_cli.py::test_demo_fast_writes_its_files`).
- the ports of score_sde, diffusers and equinox's example (their conventions are pinned by
  `tests/test_adapters.py`, `tests/test_grids.py` and `tests/test_samplers.py`), the VP
  SDE/PF-ODE comparison, the DiffFlow weight sweep and the Score-GAN and Discriminator-Flow
  toys (`tests/test_train.py`, `tests/test_discriminator_flow.py`): 20–50 s each, mostly
  compilation in a fresh process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

# What each script prints when it ran through (its last stage).
EXPECTED = {
    "demo.py": "noise floor (two data samples)",
    "new_sde_variant.py": "marginals preserved, control rejected: True",
    "plain_jax_score.py": "bits/dim",
    "vp_sde_vs_pf_ode.py": "PF-ODE deterministic: True",
    "diffflow_weight_sweep.py": "MMD to g = 0",
    "score_gan_toy.py": "mode weights",
    "discriminator_flow_toy.py": "mode weights",
    "digits_diffusion.py": "digits-FD(samples, test)",
    "port_equinox_diffusion.py": "equinox PF-ODE",
    "port_k_diffusion.py": "k-diffusion sample_euler",
    "port_diffusers.py": "diffusers DDPM/DDIM",
    "port_score_sde.py": "score_sde ports",
}


SLOW = {
    "digits_diffusion.py",
    "demo.py",
    "port_score_sde.py",
    "port_diffusers.py",
    "port_equinox_diffusion.py",
    "vp_sde_vs_pf_ode.py",
    "diffflow_weight_sweep.py",
    "score_gan_toy.py",
    "discriminator_flow_toy.py",
}


def test_every_example_is_tested():
    assert {path.name for path in EXAMPLES} == set(EXPECTED)


def _run(script: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(script), "--fast"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@pytest.fixture(scope="module")
def examples(request, tmp_path_factory):
    """The selected scripts' runs, started together on a pool of one thread per core (each
    thread waits on one subprocess): `{name: Future[CompletedProcess]}`."""
    selected = [
        item.callspec.params["script"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    ]
    with ThreadPoolExecutor(max_workers=_cores()) as pool:
        runs: dict[str, Future[subprocess.CompletedProcess[str]]] = {
            script.name: pool.submit(_run, script, tmp_path_factory.mktemp(script.stem))
            for script in selected
        }
        yield runs
        for run in runs.values():
            run.cancel()


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(path, marks=pytest.mark.slow) if path.name in SLOW else path
        for path in EXAMPLES
    ],
    ids=lambda path: path.stem,
)
def test_example_runs_fast(script: Path, examples):
    done = examples[script.name].result()
    assert done.returncode == 0, f"{script.name} failed:\n{done.stdout}\n{done.stderr}"
    assert EXPECTED[script.name] in done.stdout, done.stdout
