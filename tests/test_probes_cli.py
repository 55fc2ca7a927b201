"""Hostile inputs to the `gpm-sde` command line, table-driven.

Each probe sets up a configuration file and, where it needs one, a copy of a trained run
directory, runs `gpm_sde.cli.main(argv)` in-process, and checks its verdict:

- `refused`: the exit code (2, or argparse's 2), a one-line message on stderr naming the key,
  argument or file, no traceback, and every file under the test's folder byte-for-byte as it
  was (a refused command writes nothing);
- `correct`: exit code 0 and the correct result (checked by the probe's own `check`);
- `clean-failure`: a run that fails while training (it diverges): exit 2, one line, and a
  run directory that `--resume` can continue.

Subprocess checks run the console script (exit codes), Ctrl-C (exit 130, the run resumable)
and, under `slow`, SIGKILL during training and during a save followed by `--resume`: the
models are bitwise those of an uninterrupted run and the history is complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from gpm_sde.cli import main
from gpm_sde.cli.config import load_config

ROOT = Path(__file__).resolve().parents[1]

TINY = """\
[data]
name = "five_gaussians"
[model]
family = "score"
hidden = 8
depth = 1
embed_dim = 4
[train]
steps = 20
batch_size = 16
chunk = 10
checkpoint_every = 10
[sample]
n = 16
steps = 5
"""

GAN = """\
[data]
name = "two_moons"
[model]
family = "gan"
hidden = 8
depth = 1
latent_dim = 2
[train]
steps = 20
batch_size = 16
"""


def _edit(text: str, section: str, line: str) -> str:
    """`text` with `line` added at the top of `[section]` (the section is added if absent)."""
    head = f"[{section}]\n"
    if head in text:
        return text.replace(head, head + line + "\n", 1)
    return text + head + line + "\n"


def _drop(text: str, prefix: str) -> str:
    return "".join(ln for ln in text.splitlines(keepends=True) if not ln.startswith(prefix))


VERDICTS = ("refused", "correct", "clean-failure")
"""`refused`: exit 2 before anything is written, one line naming the key, argument or file;
`correct`: exit 0 and the right result; `clean-failure`: a run that fails while training
(exit 2, one line) and leaves a resumable run directory."""


@dataclass
class Probe:
    """One hostile input. `argv` may hold `{cfg}` (the configuration written from `config`),
    `{run}` (the run directory: a copy of a trained run if `needs_run`) and `{tmp}`."""

    name: str
    argv: list[str]
    code: int
    message: str
    config: str | bytes = TINY
    needs_run: bool = False
    setup: Callable[[Path], None] | None = None
    check: Callable[[Path], None] | None = None
    verdict: str = "refused"
    extra: dict[str, str] = field(default_factory=dict)


def _cfg(name, text, message, **kw) -> Probe:
    """A configuration-file probe: `gpm-sde train {cfg} --out {run}` is refused."""
    return Probe(name, ["train", "{cfg}", "--out", "{run}"], 2, message, config=text, **kw)


def _set(name, assignment, message) -> Probe:
    return Probe(name, ["train", "{cfg}", "--out", "{run}", "--set", assignment], 2, message)


def _resume(name, text, message, *flags, **kw) -> Probe:
    argv = ["train", "{cfg}", "--out", "{run}", "--resume", "--no-progress", *flags]
    return Probe(name, argv, 2, message, config=text, needs_run=True, **kw)


# ---------------------------------------------------------------- set-ups of the run directory


def _corrupt_payload(tmp: Path) -> None:
    path = tmp / "run" / "checkpoint.eqx"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(name: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = tmp / "run" / name
        path.write_bytes(path.read_bytes()[:-64])

    return setup


def _replace(name: str, data: bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / "run" / name).write_bytes(data)

    return setup


def _header(new: bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = tmp / "run" / "checkpoint.eqx"
        magic, _, rest = path.read_bytes().partition(b"\n")
        _, _, payload = rest.partition(b"\n")
        path.write_bytes(magic + b"\n" + new + b"\n" + payload)

    return setup


def _lock(pid: int | None, age: float = 0.0) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        lock = tmp / "run" / ".lock"
        lock.write_text("garbage" if pid is None else f"{pid}\n")
        if age:
            t = time.time() - age
            os.utime(lock, (t, t))

    return setup


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no process has it (pids are not reused this quickly)


def _stranger_dir(tmp: Path) -> None:
    (tmp / "run").mkdir()
    (tmp / "run" / "thesis.tex").write_text("do not delete")


def _empty_dir(tmp: Path) -> None:
    (tmp / "run").mkdir()


def _file(name: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / name).write_text("a file")

    return setup


def _no_config(tmp: Path) -> None:
    (tmp / "run" / "config.toml").unlink()


def _bad_run_config(data: bytes) -> Callable[[Path], None]:
    return _replace("config.toml", data)


def _ckpt_dir(tmp: Path) -> None:
    (tmp / "run" / "checkpoint.eqx").unlink()
    (tmp / "run" / "checkpoint.eqx").mkdir()


def _history_dir(tmp: Path) -> None:
    (tmp / "run" / "history.npz").unlink()
    (tmp / "run" / "history.npz").mkdir()


# ---------------------------------------------------------------- checks of correct results


def _resolved(tmp: Path, **expected) -> None:
    cfg = load_config(tmp / "run" / "config.toml")
    for dotted, value in expected.items():
        section, name = dotted.split("__")
        assert cfg[section][name] == value, (dotted, cfg[section][name])
    text = (tmp / "run" / "config.toml").read_text()
    assert "[versions]" in text and "jax = " in text


def _history(tmp: Path, last: int) -> None:
    with np.load(tmp / "run" / "history.npz") as h:
        assert h["step"].tolist() == list(range(1, last + 1))
        assert np.isfinite(h["loss"]).all() and h["loss"].shape == (last,)


def _diverged(tmp: Path) -> None:
    """The last good state (step 0) is the checkpoint, the history is empty: resumable."""
    from gpm_sde.train import read_checkpoint_header

    assert read_checkpoint_header(tmp / "run" / "checkpoint.eqx")["step"] == 0
    with np.load(tmp / "run" / "history.npz") as h:
        assert h["step"].size == 0
    assert load_config(tmp / "run" / "config.toml")["train"]["lr"] == 1e30


def _old_files_gone(tmp: Path) -> None:
    """`--overwrite` deleted what the old run held (its samples)."""
    assert not (tmp / "run" / "samples.npy").exists()


def _no_lock(tmp: Path) -> None:
    assert not (tmp / "run" / ".lock").exists()


def _all(*checks: Callable[[Path], None]) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        for c in checks:
            c(tmp)

    return check


# ---------------------------------------------------------------- the table

SCORE_ONLY = TINY
PROBES: list[Probe] = [
    # The configuration file itself.
    Probe("missing-config", ["train", "{tmp}/nope.toml"], 2, "does not exist"),
    Probe("config-is-a-directory", ["train", "{tmp}"], 2, "is not a file"),
    _cfg("non-utf8", b'[data]\nname = "\xff\xfe"\n', "not UTF-8"),
    _cfg("utf16-bom", "\ufeff[data]".encode("utf-16"), "not UTF-8"),
    _cfg("invalid-toml", "[train\nsteps = 1\n", "invalid TOML"),
    _cfg("empty-file", "", "`[data] name` is missing"),
    _cfg("missing-family", '[data]\nname = "two_moons"\n', "`[model] family` is missing"),
    _cfg("unknown-table", TINY + "[optim]\nlr = 1.0\n", "unknown table `[optim]`"),
    _cfg("unknown-key", _edit(TINY, "train", "stepz = 3"), "unknown key `stepz`"),
    _cfg("key-of-other-family", _edit(TINY, "train", "d_steps = 2"), "`[train] d_steps`"),
    _cfg("penalty-on-score", _edit(TINY, "train", 'penalty = "gp"'), "`[train] penalty`"),
    _cfg("table-not-a-table", "train = 3\n" + TINY.replace("[train]\n", "[sample2]\n"), "`train`"),
    _cfg("steps-string", _edit(_drop(TINY, "steps = 20"), "train", 'steps = "ten"'), "steps"),
    _cfg("steps-bool", _edit(_drop(TINY, "steps = 20"), "train", "steps = true"), "steps"),
    _cfg("steps-float", _edit(_drop(TINY, "steps = 20"), "train", "steps = 1.5"), "steps"),
    _cfg("steps-zero", _edit(_drop(TINY, "steps = 20"), "train", "steps = 0"), "steps"),
    _cfg("steps-negative", _edit(_drop(TINY, "steps = 20"), "train", "steps = -5"), "steps"),
    _cfg("steps-2**31", _edit(_drop(TINY, "steps = 20"), "train", "steps = 2147483648"), "steps"),
    _cfg("batch-zero", _edit(_drop(TINY, "batch_size"), "train", "batch_size = 0"), "batch_size"),
    _cfg("lr-zero", _edit(TINY, "train", "lr = 0.0"), "`[train] lr` must be > 0"),
    _cfg("lr-negative", _edit(TINY, "train", "lr = -1e-3"), "`[train] lr` must be > 0"),
    _cfg("lr-nan", _edit(TINY, "train", "lr = nan"), "`[train] lr` must be a finite"),
    _cfg("lr-inf", _edit(TINY, "train", "lr = inf"), "`[train] lr` must be a finite"),
    _cfg("lr-minus-inf", _edit(TINY, "train", "lr = -inf"), "`[train] lr` must be a finite"),
    _cfg("lr-overflow", _edit(TINY, "train", "lr = 1e400"), "`[train] lr` must be a finite"),
    _cfg("lr-bool", _edit(TINY, "train", "lr = true"), "`[train] lr` must be a number"),
    _cfg("t_min-nan", _edit(TINY, "train", "t_min = nan"), "`[train] t_min`"),
    _cfg("ema-one", _edit(TINY, "train", "ema = 1.0"), "`[train] ema` must be < 1"),
    _cfg("ema-nan", _edit(TINY, "train", "ema = nan"), "`[train] ema`"),
    _cfg("ema-negative", _edit(TINY, "train", "ema = -0.5"), "`[train] ema`"),
    _cfg("seed-negative", _edit(TINY, "train", "seed = -1"), "`[train] seed` must be >= 0"),
    _cfg("seed-2**32", _edit(TINY, "train", "seed = 4294967296"), "`[train] seed` must be <="),
    _cfg("seed-2**32-2", _edit(TINY, "train", "seed = 4294967294"), "`[train] seed` must be <="),
    _cfg("seed-int64-max", _edit(TINY, "train", "seed = 9223372036854775807"), "`[train] seed`"),
    _cfg("seed-float", _edit(TINY, "train", "seed = 1.0"), "`[train] seed` must be an integer"),
    _cfg("data-seed-2**32", _edit(TINY, "data", "seed = 4294967296"), "`[data] seed`"),
    _cfg("sample-seed-negative", _edit(TINY, "sample", "seed = -1"), "`[sample] seed`"),
    _cfg("sample-n-zero", _edit(_drop(TINY, "n = 16"), "sample", "n = 0"), "`[sample] n`"),
    _cfg("sample-lam-negative", _edit(TINY, "sample", "lam = -1.0"), "`[sample] lam`"),
    _cfg("sample-lam-nan", _edit(TINY, "sample", "lam = nan"), "`[sample] lam`"),
    _cfg("data-n-one", _edit(TINY, "data", "n = 1"), "`[data] n` must be >= 2"),
    _cfg("hidden-zero", _edit(_drop(TINY, "hidden"), "model", "hidden = 0"), "`[model] hidden`"),
    _cfg("embed-odd", _edit(_drop(TINY, "embed_dim"), "model", "embed_dim = 3"), "even"),
    _cfg("channels-two", _edit(TINY, "model", "channels = [16, 32]"), "`[model] channels`"),
    _cfg("channels-negative", _edit(TINY, "model", "channels = [16, -1, 8]"), "channels"),
    _cfg("channels-string", _edit(TINY, "model", 'channels = "abc"'), "`[model] channels`"),
    _cfg("family-unknown", TINY.replace('"score"', '"vae"'), "`[model] family` must be one of"),
    _cfg("family-int", TINY.replace('"score"', "3"), "`[model] family` must be a string"),
    _cfg("data-unknown", TINY.replace("five_gaussians", "mnist"), "`[data] name` must be one"),
    _cfg("data-int", TINY.replace('"five_gaussians"', "5"), "`[data] name` must be a string"),
    _cfg("process-unknown", _edit(TINY, "model", 'process = "vpp"'), "`[model] process`"),
    _cfg("weighting-unknown", _edit(TINY, "train", 'weighting = "edm"'), "`[train] weighting`"),
    _cfg("x64-string", _edit(TINY, "train", 'x64 = "yes"'), "`[train] x64` must be a boolean"),
    _cfg("resume-int", _edit(TINY, "train", "resume = 1"), "`[train] resume`"),
    Probe(
        "out-empty",
        ["train", "{cfg}"],
        2,
        "`[output] dir` must be a non-empty",
        config=TINY + '[output]\ndir = ""\n',
    ),
    Probe(
        "out-nul",
        ["train", "{cfg}"],
        2,
        "`[output] dir`",
        config=TINY + '[output]\ndir = "a\\u0000b"\n',
    ),
    _cfg("real-score-on-score", _edit(TINY, "model", 'real_score = "fit"'), "real_score"),
    _cfg("versions-not-strings", TINY + "[versions]\njax = 3\n", "`[versions]`"),
    _cfg("gan-clip-zero", _edit(GAN, "train", "clip = 0.0"), "`[train] clip`"),
    _cfg("gan-loss-unknown", _edit(GAN, "model", 'loss = "kl"'), "`[model] loss`"),
    _cfg("gan-penalty-weight-nan", _edit(GAN, "train", "penalty_weight = nan"), "penalty_wei"),
    _cfg(
        "dflow-t1-inf",
        GAN.replace('"gan"', '"discriminator-flow"').replace("latent_dim = 2\n", "") + "t1 = inf\n",
        "`[train] t1`",
    ),
    _cfg(
        "diffflow-beta-zero",
        GAN.replace('"gan"', '"diffflow-gan"') + "beta = 0.0\n",
        "`[train] beta` must be > 0",
    ),
    _cfg(
        "score-gan-exact-on-moons",
        GAN.replace('"gan"', '"score-gan"').replace("latent_dim = 2", 'real_score = "exact"'),
        '`[model] real_score` = "exact" needs a Gaussian-mixture',
    ),
    # Command-line overrides.
    _set("set-no-equals", "train.lr", "TABLE.KEY=VALUE"),
    _set("set-no-dot", "lr=1e-3", "TABLE.KEY=VALUE"),
    _set("set-empty-key", "train.=3", "TABLE.KEY=VALUE"),
    _set("set-unknown-key", "train.stepz=3", "unknown key `train.stepz`"),
    _set("set-unknown-table", "optim.lr=3", "unknown key `optim.lr`"),
    _set("set-lr-nan", "train.lr=nan", "`[train] lr` must be a finite"),
    _set("set-lr-negative", "train.lr=-1", "`[train] lr` must be > 0"),
    _set("set-lr-zero", "train.lr=0", "`[train] lr` must be > 0"),
    _set("set-steps-word", "train.steps=abc", "`[train] steps` must be an integer"),
    _set("set-seed-2**32", "train.seed=4294967296", "`[train] seed` must be <="),
    _set("set-family-unknown", "model.family=vae", "`[model] family` must be one of"),
    _set("set-key-of-other-family", "train.d_steps=2", "`[train] d_steps` does not apply"),
    _set("set-out-empty", "output.dir=", "`[output] dir` must be a non-empty"),
    _set("set-x64-word", "train.x64=maybe", "`[train] x64` must be a boolean"),
    _set("set-channels-scalar", "model.channels=8", "`[model] channels`"),
    Probe("steps-flag-zero", ["train", "{cfg}", "--out", "{run}", "--steps", "0"], 2, "`--steps`"),
    Probe("steps-flag-negative", ["train", "{cfg}", "--steps", "-1"], 2, "`--steps`"),
    Probe("steps-flag-word", ["train", "{cfg}", "--steps", "abc"], 2, "argument --steps"),
    Probe("steps-flag-2**31", ["train", "{cfg}", "--steps", "2147483648"], 2, "`--steps`"),
    Probe("steps-flag-float", ["train", "{cfg}", "--steps", "1e3"], 2, "argument --steps"),
    Probe("out-flag-empty", ["train", "{cfg}", "--out", ""], 2, "`--out`"),
    Probe("out-flag-nul", ["train", "{cfg}", "--out", "a\x00b"], 2, "`--out`"),
    Probe(
        "out-is-a-file", ["train", "{cfg}", "--out", "{tmp}/f"], 2, "is a file", setup=_file("f")
    ),
    Probe(
        "out-under-a-file",
        ["train", "{cfg}", "--out", "{tmp}/f/run"],
        2,
        "cannot be created",
        setup=_file("f"),
    ),
    Probe("out-impossible", ["train", "{cfg}", "--out", "/dev/null/run"], 2, "'/dev/null'"),
    Probe(
        "out-not-creatable",
        ["train", "{cfg}", "--out", "/sys/gpm-sde-probe/run"],
        2,
        "/sys/gpm-sde-probe",
    ),
    Probe("resume-and-overwrite", ["train", "{cfg}", "--resume", "--overwrite"], 2, "--overwrite"),
    Probe("force-without-resume", ["train", "{cfg}", "--out", "{run}", "--force"], 2, "`--force`"),
    _cfg(
        "overwrite-with-resume-key",
        _edit(TINY, "train", "resume = true"),
        "`--overwrite`",
        extra={"flag": "--overwrite"},
    ),
    Probe("unknown-option", ["train", "{cfg}", "--frobnicate"], 2, "unrecognized arguments"),
    Probe("no-config-argument", ["train"], 2, "CONFIG.toml"),
    Probe("unknown-command", ["fly"], 2, "invalid choice"),
    Probe("no-command", [], 2, "COMMAND"),
    # An existing run directory.
    Probe(
        "train-into-run",
        ["train", "{cfg}", "--out", "{run}"],
        2,
        "already holds a run",
        needs_run=True,
    ),
    Probe(
        "train-other-family-into-run",
        ["train", "{cfg}", "--out", "{run}"],
        2,
        "already holds a run",
        config=GAN,
        needs_run=True,
    ),
    Probe(
        "train-into-a-stranger's-dir",
        ["train", "{cfg}", "--out", "{run}"],
        2,
        "holds no gpm-sde run",
        setup=_stranger_dir,
    ),
    Probe(
        "overwrite-a-stranger's-dir",
        ["train", "{cfg}", "--out", "{run}", "--overwrite"],
        2,
        "holds no gpm-sde run",
        setup=_stranger_dir,
    ),
    Probe(
        "resume-a-stranger's-dir",
        ["train", "{cfg}", "--out", "{run}", "--resume"],
        2,
        "holds no gpm-sde run",
        setup=_stranger_dir,
    ),
    Probe(
        "out-is-the-checkpoint",
        ["train", "{cfg}", "--out", "{run}/checkpoint.eqx"],
        2,
        "is a file",
        needs_run=True,
    ),
    _resume("resume-changed-lr", _edit(TINY, "train", "lr = 0.5"), "[train] lr: unset -> 0.5"),
    _resume(
        "resume-changed-process",
        _edit(TINY, "model", 'process = "ve"'),
        '[model] process: "vp" -> "ve"',
    ),
    _resume("resume-changed-seed", _edit(TINY, "train", "seed = 7"), "[train] seed: 0 -> 7"),
    _resume("resume-changed-x64", _edit(TINY, "train", "x64 = true"), "[train] x64"),
    _resume("resume-changed-hidden", TINY.replace("hidden = 8", "hidden = 9"), "[model] hidden"),
    _resume("resume-changed-family", GAN, '[model] family: "score" -> "gan"'),
    _resume("resume-changed-data", TINY.replace("five_gaussians", "two_moons"), "[data] name"),
    _resume("resume-set-lr", TINY, "[train] lr", "--set", "train.lr=0.5"),
    _resume("resume-force-family", GAN, "written by `fit_score`", "--force"),
    _resume(
        "resume-force-hidden", TINY.replace("hidden = 8", "hidden = 9"), "does not match", "--force"
    ),
    _resume("resume-force-x64", _edit(TINY, "train", "x64 = true"), "does not match", "--force"),
    _resume("resume-steps-below", TINY, "already at step 20", "--steps", "10"),
    _resume("resume-config-steps-below", TINY.replace("steps = 20", "steps = 5"), "step 20"),
    _resume("resume-corrupt-payload", TINY, "truncated or corrupted", setup=_corrupt_payload),
    _resume("resume-truncated", TINY, "truncated or corrupted", setup=_truncate("checkpoint.eqx")),
    _resume(
        "resume-garbage-checkpoint",
        TINY,
        "not a gpm_sde checkpoint",
        setup=_replace("checkpoint.eqx", b"\x00\x01garbage"),
    ),
    _resume(
        "resume-empty-checkpoint",
        TINY,
        "not a gpm_sde checkpoint",
        setup=_replace("checkpoint.eqx", b""),
    ),
    _resume("resume-bad-header", TINY, "corrupted header", setup=_header(b"{not json")),
    _resume(
        "resume-future-version",
        TINY,
        "unsupported header",
        setup=_header(b'{"version": 99, "trainer": "fit_score", "step": 20}'),
    ),
    _resume(
        "resume-negative-step",
        TINY,
        "unsupported header",
        setup=_header(b'{"version": 2, "trainer": "fit_score", "step": -3, "sha256": "0"}'),
    ),
    _resume(
        "resume-run-config-invalid",
        TINY,
        "the run's configuration cannot be read",
        setup=_bad_run_config(b"[train\n"),
    ),
    _resume(
        "resume-run-config-not-utf8",
        TINY,
        "not UTF-8",
        setup=_bad_run_config(b"\xff\xff"),
    ),
    _resume(
        "resume-history-damaged",
        TINY,
        "history.npz",
        setup=_replace("history.npz", b"PK\x03\x04garbage"),
    ),
    _resume("resume-history-a-directory", TINY, "history.npz", setup=_history_dir),
    _resume(
        "resume-wrong-digest",
        TINY,
        "truncated or corrupted",
        setup=_header(
            b'{"version": 2, "trainer": "fit_score", "step": 20, "sha256": "' + b"0" * 64 + b'"}'
        ),
    ),
    _resume(
        "resume-digest-missing",
        TINY,
        "unsupported header",
        setup=_header(b'{"version": 2, "trainer": "fit_score", "step": 20}'),
    ),
    _resume("resume-checkpoint-a-directory", TINY, "is a folder", setup=_ckpt_dir),
    _resume(
        "resume-set-twice-last-bad",
        TINY,
        "`--set train.lr=nan`",
        "--set",
        "train.lr=1e-3",
        "--set",
        "train.lr=nan",
    ),
    Probe(
        "out-holds-the-config",
        ["train", "{cfg}", "--out", "{tmp}"],
        2,
        "holds no gpm-sde run",
    ),
    _resume("resume-locked", TINY, "locked by process", setup=_lock(os.getppid())),
    _resume("resume-locked-fresh-garbage", TINY, "locked by another process", setup=_lock(None)),
    Probe(
        "overwrite-locked",
        ["train", "{cfg}", "--out", "{run}", "--overwrite"],
        2,
        "locked by process",
        needs_run=True,
        setup=_lock(os.getppid()),
    ),
    Probe(
        "train-into-run-without-config",
        ["train", "{cfg}", "--out", "{run}", "--overwrite"],
        2,
        "holds no gpm-sde run",
        needs_run=True,
        setup=_no_config,
    ),
    # `gpm-sde sample`.
    Probe("sample-missing", ["sample", "{tmp}/none"], 2, "does not exist"),
    Probe("sample-empty-dir", ["sample", "{run}"], 2, "holds neither", setup=_empty_dir),
    Probe(
        "sample-no-config",
        ["sample", "{run}"],
        2,
        "has no config.toml",
        needs_run=True,
        setup=_no_config,
    ),
    Probe("sample-cmd-n-zero", ["sample", "{run}", "--n", "0"], 2, "`--n`", needs_run=True),
    Probe("sample-n-negative", ["sample", "{run}", "--n", "-3"], 2, "`--n`", needs_run=True),
    Probe("sample-n-word", ["sample", "{run}", "--n", "many"], 2, "argument --n", needs_run=True),
    Probe("sample-steps-zero", ["sample", "{run}", "--steps", "0"], 2, "`--steps`", needs_run=True),
    Probe(
        "sample-cmd-seed-negative",
        ["sample", "{run}", "--seed", "-1"],
        2,
        "`--seed`",
        needs_run=True,
    ),
    Probe(
        "sample-seed-2**32",
        ["sample", "{run}", "--seed", "4294967296"],
        2,
        "`--seed`",
        needs_run=True,
    ),
    Probe(
        "sample-out-a-dir",
        ["sample", "{run}", "--out", "{tmp}"],
        2,
        "is a directory",
        needs_run=True,
    ),
    Probe(
        "sample-out-under-a-file",
        ["sample", "{run}", "--out", "{tmp}/f/x.npy"],
        2,
        "is a file",
        needs_run=True,
        setup=_file("f"),
    ),
    Probe(
        "sample-corrupt-models",
        ["sample", "{run}"],
        2,
        "truncated or corrupted",
        needs_run=True,
        setup=_truncate("models.eqx"),
    ),
    Probe(
        "sample-garbage-checkpoint",
        ["sample", "{run}/checkpoint.eqx"],
        2,
        "not a gpm_sde checkpoint",
        needs_run=True,
        setup=_replace("checkpoint.eqx", b"junk"),
    ),
    Probe(
        "sample-config-of-other-family",
        ["sample", "{run}"],
        2,
        "does not hold the models of family 'gan'",
        needs_run=True,
        setup=_bad_run_config(GAN.encode()),
    ),
    Probe(
        "sample-run-config-invalid",
        ["sample", "{run}"],
        2,
        "config.toml",
        needs_run=True,
        setup=_bad_run_config(b"[data]\nname = 3\n"),
    ),
    # Correct results.
    Probe("version", ["--version"], 0, "", verdict="correct"),
    Probe("train-help", ["train", "--help"], 0, "", verdict="correct"),
    Probe(
        "resume-same-config-no-new-steps",
        ["train", "{cfg}", "--out", "{run}", "--resume", "--no-progress"],
        0,
        "",
        needs_run=True,
        verdict="correct",
        check=_all(lambda t: _history(t, 20), _no_lock, _resolved),
    ),
    Probe(
        "resume-changed-sample-keys-allowed",
        ["train", "{cfg}", "--out", "{run}", "--resume", "--no-progress"],
        0,
        "",
        config=TINY.replace("n = 16", "n = 7").replace(
            "checkpoint_every = 10", "checkpoint_every = 5"
        ),
        needs_run=True,
        verdict="correct",
        check=_all(lambda t: _resolved(t, sample__n=7, train__checkpoint_every=5), _no_lock),
    ),
    Probe(
        "resume-force-lr-continues",
        ["train", "{cfg}", "--out", "{run}", "--resume", "--force", "--no-progress"],
        0,
        "",
        config=_edit(TINY, "train", "lr = 0.5"),
        needs_run=True,
        verdict="correct",
        check=lambda t: _resolved(t, train__lr=0.5),
    ),
    Probe(
        "stale-lock-taken-over",
        ["train", "{cfg}", "--out", "{run}", "--resume", "--no-progress"],
        0,
        "",
        needs_run=True,
        setup=_lock(_dead_pid()),
        verdict="correct",
        check=_no_lock,
    ),
    Probe(
        "old-garbage-lock-taken-over",
        ["train", "{cfg}", "--out", "{run}", "--resume", "--no-progress"],
        0,
        "",
        needs_run=True,
        setup=_lock(None, age=3600.0),
        verdict="correct",
        check=_no_lock,
    ),
    Probe(
        "overwrite-replaces-with-overrides",
        [
            "train",
            "{cfg}",
            "--out",
            "{run}",
            "--overwrite",
            "--steps",
            "10",
            "--set",
            "train.lr=2e-3",
            "--set",
            "model.process=subvp",
            "--no-progress",
        ],
        0,
        "",
        needs_run=True,
        verdict="correct",
        check=_all(
            lambda t: _history(t, 10),
            lambda t: _resolved(t, train__lr=2e-3, model__process="subvp", train__steps=10),
            _old_files_gone,
            _no_lock,
        ),
    ),
    Probe("sample-help", ["sample", "--help"], 0, "", verdict="correct"),
    Probe(
        "resume-with-the-run's-own-config",
        ["train", "{run}/config.toml", "--out", "{run}", "--resume", "--no-progress"],
        0,
        "",
        needs_run=True,
        verdict="correct",
        check=_all(lambda t: _history(t, 20), _no_lock),
    ),
    Probe(
        "resume-set-same-value",
        ["train", "{cfg}", "--out", "{run}", "--resume", "--set", 'model.process="vp"'],
        0,
        "",
        needs_run=True,
        verdict="correct",
        check=lambda t: _resolved(t, model__process="vp"),
    ),
    Probe(
        "resume-v1-checkpoint-accepted",
        ["train", "{cfg}", "--out", "{run}", "--resume", "--no-progress"],
        0,
        "",
        needs_run=True,
        setup=_header(b'{"version": 1, "trainer": "fit_score", "step": 20}'),
        verdict="correct",
        check=_no_lock,
    ),
    Probe(
        "diverged-run",
        ["train", "{cfg}", "--out", "{run}", "--set", "train.lr=1e30", "--no-progress"],
        2,
        "the metric `loss` is nan at step",
        verdict="clean-failure",
        check=_all(_diverged, _no_lock),
    ),
    Probe(
        "resume-set-sample-key-allowed",
        ["train", "{cfg}", "--out", "{run}", "--resume", "--set", "sample.n=5", "--no-progress"],
        0,
        "",
        needs_run=True,
        verdict="correct",
        check=lambda t: _resolved(t, sample__n=5, train__steps=20),
    ),
]


# ---------------------------------------------------------------- the runner


def _digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (the lock too) and its SHA-256; folders as `<dir>`."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        out[rel] = "<dir>" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A run directory trained once for the module (20 steps of a tiny score model), with a
    `samples.npy` as `gpm-sde sample` would leave."""
    folder = tmp_path_factory.mktemp("trained")
    config = folder / "tiny.toml"
    config.write_text(TINY)
    run = folder / "run"
    assert main(["train", str(config), "--out", str(run), "--no-progress"]) == 0
    np.save(run / "samples.npy", np.zeros((4, 2)))
    return run


def _prepare(probe: Probe, tmp: Path, trained: Path | None) -> list[str]:
    cfg = tmp / "cfg.toml"
    data = probe.config if isinstance(probe.config, bytes) else probe.config.encode()
    cfg.write_bytes(data)
    if trained is not None:
        shutil.copytree(trained, tmp / "run")
    if probe.setup is not None:
        probe.setup(tmp)
    subs = {"{cfg}": str(cfg), "{run}": str(tmp / "run"), "{tmp}": str(tmp)}
    argv = []
    for arg in probe.argv:
        for k, v in subs.items():
            arg = arg.replace(k, v)
        argv.append(arg)
    if "flag" in probe.extra:
        argv.append(probe.extra["flag"])
    return argv


@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
def test_probe(probe: Probe, tmp_path, capsys, request):
    trained = request.getfixturevalue("trained_run") if probe.needs_run else None
    argv = _prepare(probe, tmp_path, trained)
    before = _digest(tmp_path)
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err and "Traceback" not in captured.out
    assert code == probe.code, (code, err)
    if probe.verdict != "correct":
        lines = [ln for ln in err.splitlines() if ln.strip() and "\r" not in ln]
        # One message line (argparse adds its usage line before it).
        assert lines and lines[-1].startswith("gpm-sde"), err
        assert len([ln for ln in lines if not ln.startswith(("usage:", " "))]) == 1, err
        assert probe.message in lines[-1], (probe.message, err)
    if probe.verdict == "refused":
        assert _digest(tmp_path) == before, "a refused command changed the files"
    if probe.check is not None:
        probe.check(tmp_path)


def test_probe_counts():
    """The table: at least 90 probes, each with a distinct name, counted by verdict."""
    names = [p.name for p in PROBES]
    assert len(set(names)) == len(names)
    counts = {v: sum(p.verdict == v for p in PROBES) for v in VERDICTS}
    assert sum(counts.values()) == len(PROBES) >= 90 and counts["refused"] >= 90
    assert all(p.message for p in PROBES if p.verdict == "refused")


# ---------------------------------------------------------------- subprocesses


def _console() -> list[str]:
    script = shutil.which("gpm-sde", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "gpm_sde.cli"]


def test_console_script_exit_codes(tmp_path):
    """The installed `gpm-sde`: 0 for --version, 2 and one line for a refused configuration."""
    assert subprocess.run([*_console(), "--version"], capture_output=True).returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(_edit(TINY, "train", "lr = nan"))
    proc = subprocess.run(
        [*_console(), "train", str(bad), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "`[train] lr` must be a finite" in proc.stderr
    assert not (tmp_path / "run").exists()


# A training process that stops itself at a chosen moment: `stop` is "SIGINT@K" (Ctrl-C's
# KeyboardInterrupt when the chunk starting at step K is about to run), "SIGKILL@K" (killed
# there, after the checkpoint of an earlier step), or "SIGKILL-save@N" (killed inside the
# N-th file replace: config.toml is the 1st, then history and checkpoint alternate).
DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    from gpm_sde.train import _loop
    from gpm_sde.train import _checkpoint
    stop = os.environ["GPM_PROBE_STOP"]
    kind, at = stop.split("@")
    at = int(at)
    keys = _loop.step_keys
    def step_keys(key, start, stop_):
        if kind == "SIGINT" and start == at:
            # What Python's SIGINT handler raises, raised here directly: a subprocess of a
            # test worker may inherit SIGINT ignored, and the signal would then be lost.
            raise KeyboardInterrupt
        if kind == "SIGKILL" and start == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return keys(key, start, stop_)
    _loop.step_keys = step_keys
    replace = os.replace
    count = [0]
    def killing_replace(a, b):
        count[0] += 1
        if kind == "SIGKILL-save" and count[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return replace(a, b)
    _checkpoint.os.replace = killing_replace
    from gpm_sde.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)

RESUMABLE = TINY.replace("steps = 20", "steps = 60").replace(
    "checkpoint_every = 10", "checkpoint_every = 20"
)


def _driven(stop: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GPM_PROBE_STOP": stop, "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, "-c", DRIVER, *argv], capture_output=True, text=True, env=env, timeout=300
    )


def _payload(path: Path) -> bytes:
    return path.read_bytes().split(b"\n", 2)[2]


def test_ctrl_c_exits_130_and_keeps_a_resumable_checkpoint(tmp_path):
    """Ctrl-C at step 30 (checkpoints every 20): exit 130, one line, no traceback; the lock is
    released and the checkpoint and history hold the 30 completed steps."""
    from gpm_sde.train import read_checkpoint_header

    config = tmp_path / "cfg.toml"
    config.write_text(RESUMABLE)
    run = tmp_path / "run"
    proc = _driven("SIGINT@30", ["train", str(config), "--out", str(run), "--no-progress"])
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "--resume" in proc.stderr, proc.stderr
    assert read_checkpoint_header(run / "checkpoint.eqx")["step"] == 30
    with np.load(run / "history.npz") as h:
        assert h["step"].tolist() == list(range(1, 31))
    assert not (run / ".lock").exists()
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))


@pytest.mark.slow
def test_sigkill_in_training_and_in_a_save_then_resume_is_bitwise(tmp_path):
    """Killed during training (step 50, last checkpoint 40), then, resumed, killed inside
    a checkpoint save, then resumed to the end: the models are bitwise those of an
    uninterrupted run, and the history is complete and equal."""
    config = tmp_path / "cfg.toml"
    config.write_text(RESUMABLE)
    straight, run = tmp_path / "straight", tmp_path / "run"
    args = ["train", str(config), "--no-progress", "--out"]
    assert _driven("none@0", [*args, str(straight)]).returncode == 0

    proc = _driven("SIGKILL@50", [*args, str(run)])
    assert proc.returncode == -signal.SIGKILL
    assert (run / ".lock").exists()  # left by the killed process: stale, taken over below
    # Resumed from step 40: replaces are config (1), history@60 (2), checkpoint@60 (3).
    proc = _driven("SIGKILL-save@3", [*args, str(run), "--resume"])
    assert proc.returncode == -signal.SIGKILL
    leftovers = list(run.glob(".checkpoint.eqx.*.tmp"))
    assert leftovers  # the half-done save, never renamed over the checkpoint
    proc = _driven("none@0", [*args, str(run), "--resume"])
    assert proc.returncode == 0, proc.stderr

    for name in ("models.eqx", "checkpoint.eqx"):
        assert _payload(run / name) == _payload(straight / name), name
    with np.load(run / "history.npz") as a, np.load(straight / "history.npz") as b:
        assert a["step"].tolist() == list(range(1, 61))
        np.testing.assert_array_equal(a["loss"], b["loss"])
