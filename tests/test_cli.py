"""The `gpm-sde` command line: help texts, configuration errors, train + sample end to end,
the demo and the theory report, called in-process through `gpm_sde.cli.main`."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from gpm_sde.cli import main, parser, verify as verify_cmd
from gpm_sde.cli.config import KEYS, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", [None, "demo", "train", "sample", "verify"])
def test_help_describes_every_option(command, capsys):
    argv = ["--help"] if command is None else [command, "--help"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    sub = parser() if command is None else _subparsers()[command]
    for action in sub._actions:
        assert action.help, f"{command}: `{action.dest}` has no help text"
        for option in action.option_strings:
            assert option in out, f"{command} --help does not mention {option}"
        if not action.option_strings and action.metavar:
            assert str(action.metavar) in out
    if command == "train":  # the epilog documents every configuration key
        for key in KEYS:
            assert f"{key.name} (" in out


def _write(tmp_path: Path, text: str, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


BASE = '[data]\nname = "five_gaussians"\n[model]\nfamily = "score"\n'


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (BASE + "[train]\nstepz = 3\n", ["unknown key `stepz`", "[train]", "steps", "batch_size"]),
        (
            BASE + '[train]\nsteps = "ten"\n',
            ["`[train] steps` must be an integer", "str", "'ten'"],
        ),
        (BASE + "[train]\nlr = true\n", ["`[train] lr` must be a number", "bool", "True"]),
        (
            '[data]\nname = "five_gaussians"\n[model]\nfamily = "vae"\n',
            ["`[model] family` must be one of", "'score'", "'diffflow-gan'", "'vae'"],
        ),
        (
            '[data]\nname = "mnist"\n[model]\nfamily = "gan"\n',
            ["`[data] name` must be one of", "'two_moons'", "'mnist'"],
        ),
        (BASE + "[train]\nd_steps = 2\n", ["`[train] d_steps` does not apply", "'score'", "gan"]),
        (BASE + "[optim]\nlr = 1.0\n", ["unknown table `[optim]`", "[train]"]),
        ('[data]\nname = "two_moons"\n', ["required key `[model] family` is missing"]),
        (BASE + "[train]\nsteps = 0\n", ["`[train] steps` must be >= 1", "0"]),
        (BASE + "[train\nsteps = 1\n", ["invalid TOML"]),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "wrong-type-bool",
        "unknown-family",
        "unknown-data",
        "key-of-other-family",
        "unknown-table",
        "missing-family",
        "out-of-range",
        "invalid-toml",
    ],
)
def test_config_errors_name_the_problem(tmp_path, capsys, text, fragments):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    assert str(path) in str(info.value)
    # Through the command line: exit code 2 and the same message on stderr.
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert "gpm-sde train: error:" in err and fragments[0] in err


def test_missing_config_file(tmp_path, capsys):
    missing = tmp_path / "nope.toml"
    assert main(["train", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "nope.toml" in err and "does not exist" in err
    assert main(["sample", str(tmp_path / "no-run")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_every_example_config_is_valid():
    configs = sorted((ROOT / "examples" / "configs").glob("*.toml"))
    families = {load_config(path).family for path in configs}
    assert families == {"score", "gan", "score-gan", "discriminator-flow", "diffflow-gan"}


TINY = {
    "score": """
[data]
name = "five_gaussians"
[model]
family = "score"
hidden = 16
depth = 1
embed_dim = 8
[train]
steps = 20
batch_size = 32
chunk = 10
[sample]
n = 64
steps = 10
""",
    "gan": """
[data]
name = "two_moons"
n = 500
[model]
family = "gan"
hidden = 16
depth = 1
latent_dim = 2
[train]
steps = 20
batch_size = 32
ema = 0.9
[sample]
n = 64
""",
}


@pytest.mark.parametrize("family", sorted(TINY))
def test_train_then_sample(tmp_path, capsys, family):
    x64 = bool(jax.config.read("jax_enable_x64"))
    config = _write(tmp_path, TINY[family])
    run_dir = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "sample with: gpm-sde sample" in out
    for name in ("config.toml", "checkpoint.eqx", "models.eqx", "history.npz"):
        assert (run_dir / name).is_file(), name
    history = np.load(run_dir / "history.npz")
    assert history["step"].tolist() == list(range(1, 21))
    assert bool(jax.config.read("jax_enable_x64")) == x64  # the run's precision is restored

    steps = 20
    if family == "score":  # resume to 30 steps: only the 10 new steps run
        args = ["train", str(config), "--out", str(run_dir), "--resume", "--steps", "30"]
        assert main([*args, "--no-progress"]) == 0
        assert "steps 21-30" in capsys.readouterr().out
        assert np.load(run_dir / "history.npz")["step"].tolist() == list(range(1, 31))
        steps = 30

    assert main(["sample", str(run_dir)]) == 0
    out = capsys.readouterr().out
    samples = np.load(run_dir / "samples.npy")
    assert samples.shape == (64, 2) and np.isfinite(samples).all()
    assert "MMD to the data" in out and f"step {steps}" in out
    if _has_matplotlib():
        assert (run_dir / "samples.png").is_file()
    if family == "gan":  # from the trainer's checkpoint (the training state, with its EMA)
        target = tmp_path / "from_checkpoint.npy"
        args = ["sample", str(run_dir / "checkpoint.eqx"), "--n", "16", "--out", str(target)]
        assert main(args) == 0
        assert np.load(target).shape == (16, 2)


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_sample_rejects_a_checkpoint_of_other_models(tmp_path, capsys):
    config = _write(tmp_path, TINY["score"])
    run_dir = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run_dir), "--no-progress"]) == 0
    text = TINY["score"].replace("hidden = 16", "hidden = 8")
    (run_dir / "config.toml").write_text(text, encoding="utf-8")
    assert main(["sample", str(run_dir)]) == 2
    assert "does not match" in capsys.readouterr().err


def test_demo_fast_writes_its_files(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--fast", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["rows"]) == 6 and metrics["noise_floor"] > 0
    assert all(np.isfinite(r["mmd_to_data"]) for r in metrics["rows"])
    assert "| DiffFlow | g = 0 |" in (out / "metrics.md").read_text()
    assert f"wrote {out / 'metrics.md'}" in printed
    if _has_matplotlib():
        assert (out / "demo.png").is_file()


def test_verify_runs_the_theory_report(capfd):
    assert main(["verify", "--list"]) == 0
    assert "lambda-family" in capfd.readouterr().out


def test_verify_without_the_repository(monkeypatch, capsys):
    monkeypatch.setattr(verify_cmd, "theory_available", lambda cwd: False)
    assert main(["verify", "--fast"]) == 2
    err = capsys.readouterr().err
    assert "clone of the repository" in err and "python -m theory" in err


def test_module_entry_point_in_a_subprocess():
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-m", "gpm_sde.cli", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for command in ("demo", "train", "sample", "verify"):
        assert command in done.stdout
    script = shutil.which("gpm-sde")
    if script is not None:  # the console script, when the package is installed
        done = subprocess.run([script, "demo", "--help"], capture_output=True, text=True, env=env)
        assert done.returncode == 0 and "--fast" in done.stdout


def test_train_keys_are_the_trainer_keywords():
    """A `[train]` key that names a keyword of a family's trainer applies to exactly the
    families whose trainer takes it, and `gpm-sde train` passes it on (read from the
    signature): the schema cannot drift from `gpm_sde.train`."""
    import inspect

    from gpm_sde import train
    from gpm_sde.cli.config import FAMILIES, TRAINERS, parse_config
    from gpm_sde.cli.train_cmd import trainer_options

    signatures = {f: inspect.signature(getattr(train, TRAINERS[f])).parameters for f in FAMILIES}
    cli_only = {"seed", "x64", "t_min", "sigma_final", "real_score_steps", "steps"}
    loop = set(train.LoopOptions.__annotations__)
    for key in KEYS:
        if key.section != "train" or key.name in cli_only | loop:
            continue
        takes = {f for f in FAMILIES if key.name in signatures[f]}
        assert takes, f"[train] {key.name} is no trainer keyword"
        assert set(key.families or FAMILIES) == takes, (key.name, key.families, takes)
    raw = {
        "data": {"name": "five_gaussians"},
        "model": {"family": "gan"},
        "train": {"d_steps": 3, "penalty": "none", "clip": 0.1, "ema": 0.9, "chunk": 7},
    }
    opts = trainer_options(parse_config(raw, Path("x.toml")), train.train_gan)
    assert opts == {
        "d_steps": 3,
        "penalty": None,
        "clip": 0.1,
        "ema": 0.9,
        "chunk": 7,
        "batch_size": 256,
        "resume": False,
    }
