r"""The TOML run configuration of `gpm-sde train` and `gpm-sde sample`: its schema, and a loader
that rejects anything it does not understand with a message naming the key.

A configuration has five tables; only `[data] name` and `[model] family` are required:

```toml
[data]
name = "five_gaussians"

[model]
family = "score"
hidden = 64

[train]
steps = 2000

[sample]
n = 2000

[output]
dir = "runs/score"
```

Every key, its type, its default and the families it applies to are in `KEYS` (and in
`gpm-sde train --help`). A key left out takes its default; a default of `None` means "the
training loop's own default" (see `gpm_sde.train`).
"""

from __future__ import annotations

import json
import math
import textwrap
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAMILIES = ("score", "gan", "score-gan", "discriminator-flow", "diffflow-gan")
"""The model families, each trained by one loop of `gpm_sde.train`."""

TRAINERS = {
    "score": "fit_score",
    "gan": "train_gan",
    "score-gan": "train_score_gan",
    "discriminator-flow": "train_discriminator_flow",
    "diffflow-gan": "train_diffflow_gan",
}
"""Family → the `gpm_sde.train` function that trains it (also the checkpoint's trainer name)."""

MIXTURES = ("five_gaussians", "eight_gaussians", "grid_gaussians")
SAMPLERS = ("two_moons", "swiss_roll", "checkerboard")
DATASETS = (*MIXTURES, *SAMPLERS, "digits")
"""The data sets of `gpm_sde.data` a run can train on."""

GAN_LOSSES = ("nonsaturating", "minimax", "wgan", "hinge", "lsgan")
SECTIONS = ("data", "model", "train", "sample", "output")
VERSIONS = "versions"
"""The table of package versions that `gpm-sde train` writes into the run's resolved
`config.toml` (strings, read back and ignored)."""

INT_MAX = 2**31 - 1
"""The largest integer a key without its own maximum accepts (step counts are folded into
PRNG keys as 32-bit integers)."""
SEED_MAX = 2**32 - 1
"""The largest seed: `jax.random.key(seed)` keeps 32 bits, so `2**32` would equal seed 0."""

_GENERATORS = ("gan", "score-gan", "diffflow-gan")
_REAL_SCORE = ("score-gan", "diffflow-gan")
_DISCRIMINATORS = ("gan", "discriminator-flow")


class ConfigError(ValueError):
    """A configuration that cannot be run: a missing file, invalid TOML, an unknown table or
    key, a value of the wrong type or out of range. The message names the file and the key."""


@dataclass(frozen=True)
class Key:
    """One configuration key: its table, name, type, default and the families it applies to
    (`None`: all of them)."""

    section: str
    name: str
    kind: str  # "int", "float", "str", "bool" or "int-list"
    default: Any
    help: str
    families: tuple[str, ...] | None = None
    choices: tuple[str, ...] | None = None
    minimum: int | float | None = None
    exclusive_minimum: bool = False
    maximum: int | float | None = None
    exclusive_maximum: bool = False
    required: bool = False

    @property
    def label(self) -> str:
        return f"[{self.section}] {self.name}"

    def applies_to(self, family: str) -> bool:
        return self.families is None or family in self.families


def _k(section: str, name: str, kind: str, default: Any, help: str, **kw: Any) -> Key:
    return Key(section, name, kind, default, help, **kw)


KEYS: tuple[Key, ...] = (
    # [data]
    _k("data", "name", "str", None, "the data set", choices=DATASETS, required=True),
    _k(
        "data",
        "n",
        "int",
        None,
        "train on a fixed set of n points drawn once (digits: the first n training images); "
        "default: fresh draws from the law at every step (digits: the 1,438 training images)",
        minimum=2,
    ),
    _k(
        "data",
        "seed",
        "int",
        0,
        "seed of the fixed training set and of the digits split",
        minimum=0,
        maximum=SEED_MAX,
    ),
    # [model]
    _k("model", "family", "str", None, "the model family", choices=FAMILIES, required=True),
    _k("model", "hidden", "int", 128, "width of the MLP hidden layers (2-D data)", minimum=1),
    _k("model", "depth", "int", 3, "number of MLP hidden layers (2-D data)", minimum=1),
    _k(
        "model",
        "embed_dim",
        "int",
        32,
        "size of the Fourier time embedding (even)",
        families=("score", "score-gan", "discriminator-flow"),
        minimum=2,
    ),
    _k("model", "latent_dim", "int", 8, "generator latent size", families=_GENERATORS, minimum=1),
    _k(
        "model",
        "channels",
        "int-list",
        [16, 32, 32],
        "U-Net widths at 8×8, 4×4, 2×2 (digits: score networks)",
        families=("score", "score-gan"),
    ),
    _k(
        "model",
        "conv_width",
        "int",
        32,
        "width of the convolutional generator and discriminator (digits)",
        families=(*_GENERATORS, "discriminator-flow"),
        minimum=1,
    ),
    _k(
        "model",
        "process",
        "str",
        "vp",
        "forward process of the score model (ε-parameterised)",
        families=("score",),
        choices=("vp", "subvp", "ve"),
    ),
    _k(
        "model",
        "loss",
        "str",
        "nonsaturating",
        "GAN loss of the discriminator (and generator)",
        families=_DISCRIMINATORS,
        choices=GAN_LOSSES,
    ),
    _k(
        "model",
        "real_score",
        "str",
        None,
        "data score: the exact score of a mixture, or an EDM denoiser fitted first; default: "
        "exact for mixtures, fit otherwise",
        families=_REAL_SCORE,
        choices=("exact", "fit"),
    ),
    _k(
        "model",
        "sigma_data",
        "float",
        None,
        "data standard deviation of the EDM denoisers; default: estimated from the data",
        families=_REAL_SCORE,
        minimum=0.0,
        exclusive_minimum=True,
    ),
    # [train]
    _k("train", "steps", "int", 1000, "optimiser steps (rounds for discriminator-flow)", minimum=1),
    _k("train", "batch_size", "int", 256, "points per step", minimum=1),
    _k(
        "train",
        "lr",
        "float",
        None,
        "learning rate of Adam; default: the trainer's",
        minimum=0.0,
        exclusive_minimum=True,
    ),
    _k(
        "train",
        "seed",
        "int",
        0,
        "PRNG seed of the initialisation and of the run (seed + 1 and seed + 2 seed the data "
        "score, hence the maximum 2**32 - 3)",
        minimum=0,
        maximum=SEED_MAX - 2,
    ),
    _k(
        "train",
        "ema",
        "float",
        None,
        "EMA decay of the returned model, e.g. 0.999; default: none",
        families=("score", "gan", "score-gan"),
        minimum=0.0,
        maximum=1.0,
        exclusive_maximum=True,
    ),
    _k("train", "resume", "bool", False, "continue from the run's checkpoint if it exists"),
    _k(
        "train",
        "checkpoint_every",
        "int",
        None,
        "save the checkpoint every this many steps; default: at the end",
        minimum=1,
    ),
    _k("train", "chunk", "int", None, "steps per jitted call; default: the trainer's", minimum=1),
    _k("train", "x64", "bool", False, "train (and sample) in float64"),
    _k(
        "train",
        "weighting",
        "str",
        None,
        "DSM weighting; default: std2",
        families=("score",),
        choices=("std2", "likelihood"),
    ),
    _k(
        "train",
        "t_min",
        "float",
        1e-3,
        "smallest diffusion time of the DSM loss",
        families=("score",),
        minimum=0.0,
        exclusive_minimum=True,
    ),
    _k(
        "train",
        "d_steps",
        "int",
        None,
        "discriminator descents per step; default: the trainer's",
        families=_DISCRIMINATORS,
        minimum=1,
    ),
    _k(
        "train",
        "penalty",
        "str",
        None,
        'discriminator regulariser ("none" for none); default: the trainer\'s',
        families=_DISCRIMINATORS,
        choices=("gp", "r1", "none"),
    ),
    _k(
        "train",
        "penalty_weight",
        "float",
        None,
        "weight of the regulariser; default: the trainer's",
        families=_DISCRIMINATORS,
        minimum=0.0,
    ),
    _k(
        "train",
        "clip",
        "float",
        None,
        "clip the discriminator weights to [-c, c] (WGAN); default: no clipping",
        families=("gan",),
        minimum=0.0,
        exclusive_minimum=True,
    ),
    _k(
        "train",
        "score_steps",
        "int",
        None,
        "generated-score descents per generator step",
        families=("score-gan",),
        minimum=1,
    ),
    _k(
        "train",
        "warmup",
        "int",
        None,
        "score-only steps first",
        families=("score-gan",),
        minimum=0,
    ),
    _k("train", "p_mean", "float", None, "mean of log σ", families=("score-gan",)),
    _k(
        "train",
        "p_std",
        "float",
        None,
        "standard deviation of log σ",
        families=("score-gan",),
        minimum=0.0,
        exclusive_minimum=True,
    ),
    _k(
        "train",
        "sigma_max",
        "float",
        None,
        "largest σ of the EDM process",
        families=("score-gan",),
        minimum=0.0,
        exclusive_minimum=True,
    ),
    _k(
        "train",
        "field_at",
        "str",
        None,
        "where the Score-GAN field is evaluated: at the generated points, or at noised copies",
        families=("score-gan",),
        choices=("generated", "noised"),
    ),
    _k(
        "train",
        "field_weight",
        "str",
        None,
        "power of σ in the Score-GAN field: sigma2 (default) or sigma (the GPM authors' code)",
        families=("score-gan",),
        choices=("sigma2", "sigma"),
    ),
    _k(
        "train",
        "score_loss",
        "str",
        None,
        "loss of the generated score: edm (weighted) or denoiser (plain, the GPM authors' code)",
        families=("score-gan",),
        choices=("edm", "denoiser"),
    ),
    _k(
        "train",
        "weight_data",
        "float",
        None,
        "weight of the data score in the Score-GAN field",
        families=("score-gan",),
        minimum=0.0,
    ),
    _k(
        "train",
        "weight_gen",
        "float",
        None,
        "weight of the generated score in the Score-GAN field",
        families=("score-gan",),
        minimum=0.0,
    ),
    _k(
        "train",
        "g_loss_scale",
        "float",
        None,
        "factor of the Score-GAN generator loss",
        families=("score-gan",),
        minimum=0.0,
        exclusive_minimum=True,
    ),
    _k(
        "train",
        "n_particles",
        "int",
        None,
        "particles flowed per round",
        families=("discriminator-flow",),
        minimum=1,
    ),
    _k(
        "train",
        "flow_steps",
        "int",
        None,
        "Euler steps of the flow (also used by `sample`)",
        families=("discriminator-flow",),
        minimum=1,
    ),
    _k(
        "train",
        "t1",
        "float",
        None,
        "time horizon of the flow (also used by `sample`)",
        families=("discriminator-flow",),
        minimum=0.0,
        exclusive_minimum=True,
    ),
    _k(
        "train",
        "eta",
        "float",
        None,
        "step multiplier of the flow, eta * t1 / flow_steps per step (also used by `sample`)",
        families=("discriminator-flow",),
        minimum=0.0,
        exclusive_minimum=True,
    ),
    _k(
        "train",
        "entropy_reg",
        "float",
        None,
        "variance rate of the noise added along the flow (also used by `sample`)",
        families=("discriminator-flow",),
        minimum=0.0,
    ),
    _k(
        "train",
        "g",
        "float",
        None,
        "DiffFlow diffusion g, 0 <= g² <= 2β; default: 0 (the GAN end)",
        families=("diffflow-gan",),
        minimum=0.0,
    ),
    _k(
        "train",
        "beta",
        "float",
        None,
        "DiffFlow step weight β",
        families=("diffflow-gan",),
        minimum=0.0,
        exclusive_minimum=True,
    ),
    _k(
        "train",
        "sigma",
        "float",
        None,
        "data smoothing σ of the DiffFlow field",
        families=("diffflow-gan",),
        minimum=0.0,
        exclusive_minimum=True,
    ),
    _k(
        "train",
        "sigma_final",
        "float",
        None,
        "anneal σ linearly from `sigma` to this value over training; default: constant σ",
        families=("diffflow-gan",),
        minimum=0.0,
        exclusive_minimum=True,
    ),
    _k(
        "train",
        "real_score_steps",
        "int",
        None,
        'steps of the data-score fit when real_score = "fit"; default: steps',
        families=_REAL_SCORE,
        minimum=1,
    ),
    # [sample]
    _k("sample", "n", "int", 2000, "number of samples", minimum=1),
    _k(
        "sample",
        "steps",
        "int",
        500,
        "solver steps of the reverse SDE",
        families=("score",),
        minimum=1,
    ),
    _k(
        "sample",
        "lam",
        "float",
        1.0,
        "the reverse-family member λ = lam · g: 1 the reverse SDE, 0 the probability-flow ODE",
        families=("score",),
        minimum=0.0,
    ),
    _k("sample", "seed", "int", 0, "PRNG seed of the samples", minimum=0, maximum=SEED_MAX),
    # [output]
    _k("output", "dir", "str", None, "the run directory; default: runs/<config file stem>"),
)
"""Every configuration key."""

_BY_SECTION: dict[str, dict[str, Key]] = {
    s: {k.name: k for k in KEYS if k.section == s} for s in SECTIONS
}


@dataclass(frozen=True)
class RunConfig:
    """A validated configuration: every key of every table, defaults filled in (`None` where
    the trainer's default applies). `text` is the file as written, `path` where it was read."""

    values: Mapping[str, Mapping[str, Any]]
    path: Path
    text: str = field(repr=False)

    @property
    def family(self) -> str:
        return self.values["model"]["family"]

    @property
    def data_name(self) -> str:
        return self.values["data"]["name"]

    def __getitem__(self, section: str) -> Mapping[str, Any]:
        return self.values[section]

    def run_dir(self) -> Path:
        """`[output] dir`, or `runs/<stem of the config file>`."""
        out = self.values["output"]["dir"]
        return Path(out) if out is not None else Path("runs") / self.path.stem

    def set(self, section: str, name: str, value: Any) -> RunConfig:
        """A copy with one value replaced (not validated: see `load_config(overrides=...)`)."""
        values = {s: dict(v) for s, v in self.values.items()}
        values[section][name] = value
        return RunConfig(values, self.path, self.text)

    def to_toml(self, versions: Mapping[str, str] | None = None) -> str:
        """The resolved configuration as TOML: every key of the family with its value
        (defaults and overrides included; a key left to the trainer's default is a comment),
        then the `[versions]` table. `load_config` reads it back to the same values."""
        lines = [
            "# The resolved configuration of this run, written by `gpm-sde train`: every key,",
            "# defaults and command-line overrides included. `gpm-sde sample` rebuilds the",
            "# models from it; `gpm-sde train --resume` compares a new configuration with it.",
        ]
        for section in SECTIONS:
            lines.append(f"\n[{section}]")
            for name, value in self.values[section].items():
                if value is None:
                    lines.append(f"# {name}: unset (the trainer's default)")
                else:
                    lines.append(f"{name} = {_toml_value(value)}")
        if versions:
            lines.append(f"\n[{VERSIONS}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in versions.items())
        return "\n".join(lines) + "\n"

    def differences(self, other: RunConfig, ignore: Sequence[str] = ()) -> list[str]:
        """The keys whose values differ from `other`'s, as lines `[table] key: a -> b`; keys
        named `table.key` in `ignore` are skipped."""
        out = []
        for section in SECTIONS:
            mine, theirs = self.values[section], other.values[section]
            for name in sorted(set(mine) | set(theirs)):
                if f"{section}.{name}" in ignore:
                    continue
                a, b = theirs.get(name), mine.get(name)
                if a != b or type(a) is not type(b):
                    out.append(f"[{section}] {name}: {_show(a)} -> {_show(b)}")
        return out


def _toml_value(value: Any) -> str:
    """`value` (bool, int, finite float, str or list of int) as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # finite: validated; repr round-trips
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _type_name(kind: str) -> str:
    return {
        "int": "an integer",
        "float": "a number",
        "str": "a string",
        "bool": "a boolean (true or false)",
        "int-list": "a list of integers",
    }[kind]


def _check_type(key: Key, value: Any, where: str) -> Any:
    """`value` converted to the key's type, or a `ConfigError` naming key, type and value."""
    ok = False
    if key.kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif key.kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            try:
                value = float(value)
            except OverflowError:  # an integer beyond the float range
                value = math.inf
            if not math.isfinite(value):
                raise ConfigError(f"{where}: `{key.label}` must be a finite number, got {value!r}.")
    elif key.kind == "str":
        ok = isinstance(value, str)
    elif key.kind == "bool":
        ok = isinstance(value, bool)
    elif key.kind == "int-list":
        ok = isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        )
    if not ok:
        raise ConfigError(
            f"{where}: `{key.label}` must be {_type_name(key.kind)}, got "
            f"{type(value).__name__} {value!r}."
        )
    return value


def _check_value(key: Key, value: Any, where: str) -> None:
    if key.choices is not None and value not in key.choices:
        raise ConfigError(
            f"{where}: `{key.label}` must be one of {', '.join(map(repr, key.choices))}; got "
            f"{value!r}."
        )
    low, high = key.minimum, key.maximum
    if key.kind == "int" and high is None:
        high = INT_MAX
    if key.kind == "str" and key.choices is None and (not value or "\x00" in value):
        raise ConfigError(
            f"{where}: `{key.label}` must be a non-empty string without NUL characters, got "
            f"{value!r}."
        )
    if low is not None and (value <= low if key.exclusive_minimum else value < low):
        bound = ">" if key.exclusive_minimum else ">="
        raise ConfigError(f"{where}: `{key.label}` must be {bound} {_num(low)}, got {value!r}.")
    if high is not None and (value >= high if key.exclusive_maximum else value > high):
        bound = "<" if key.exclusive_maximum else "<="
        raise ConfigError(f"{where}: `{key.label}` must be {bound} {_num(high)}, got {value!r}.")
    if key.name == "channels" and any(not 1 <= v <= INT_MAX for v in value):
        raise ConfigError(f"{where}: `{key.label}` must list widths >= 1, got {value!r}.")
    if key.name == "channels" and len(value) != 3:
        raise ConfigError(
            f"{where}: `{key.label}` must list 3 widths (8×8, 4×4, 2×2), got {value!r}."
        )
    if key.name == "embed_dim" and value % 2:
        raise ConfigError(f"{where}: `{key.label}` must be even, got {value!r}.")


def _num(x: int | float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _valid_keys(section: str, family: str | None) -> str:
    keys = [k.name for k in _BY_SECTION[section].values() if family is None or k.applies_to(family)]
    return ", ".join(keys) if keys else "none"


def parse_config(raw: Mapping[str, Any], path: Path, text: str = "") -> RunConfig:
    """Validate the parsed TOML `raw` (read from `path`) against `KEYS`; raise `ConfigError`."""
    where = str(path)
    raw = dict(raw)
    versions = raw.pop(VERSIONS, {})
    if not isinstance(versions, dict) or not all(isinstance(v, str) for v in versions.values()):
        raise ConfigError(
            f"{where}: `[{VERSIONS}]` must be a table of strings (package versions), got "
            f"{versions!r}."
        )
    for section, table in raw.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{where}: unknown table `[{section}]`; the valid tables are "
                f"{', '.join(f'[{s}]' for s in SECTIONS)}."
            )
        if not isinstance(table, dict):
            raise ConfigError(
                f"{where}: `{section}` must be a table `[{section}]` of keys, got "
                f"{type(table).__name__} {table!r}."
            )
    for key in KEYS:
        if key.required and key.name not in raw.get(key.section, {}):
            raise ConfigError(
                f"{where}: the required key `{key.label}` is missing; it is one of "
                f"{', '.join(map(repr, key.choices or ()))}."
            )
    family = _check_type(_BY_SECTION["model"]["family"], raw["model"]["family"], where)
    _check_type(_BY_SECTION["data"]["name"], raw["data"]["name"], where)
    _check_value(_BY_SECTION["model"]["family"], family, where)
    values: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for section, table in raw.items():
        for name, value in table.items():
            key = _BY_SECTION[section].get(name)
            if key is None:
                raise ConfigError(
                    f"{where}: unknown key `{name}` in `[{section}]`; the valid keys of "
                    f"[{section}] for family {family!r} are: {_valid_keys(section, family)}."
                )
            if not key.applies_to(family):
                users = ", ".join(key.families or ())
                raise ConfigError(
                    f"{where}: `{key.label}` does not apply to family {family!r} (it is used by: "
                    f"{users}); the valid keys of [{section}] for {family!r} are: "
                    f"{_valid_keys(section, family)}."
                )
            value = _check_type(key, value, where)
            _check_value(key, value, where)
            values[section][name] = value
    for key in KEYS:
        if key.applies_to(family):
            values[key.section].setdefault(key.name, key.default)
    name = values["data"]["name"]
    if values["model"].get("real_score") == "exact" and name not in MIXTURES:
        raise ConfigError(
            f'{where}: `[model] real_score` = "exact" needs a Gaussian-mixture data set '
            f'({", ".join(MIXTURES)}); {name!r} has no exact score: use "fit".'
        )
    return RunConfig(values, path, text)


def parse_override(text: str) -> tuple[str, str, Any, str]:
    """`--set table.key=value` as `(table, key, value, origin)`: the value is read as a TOML
    value (`3`, `1e-3`, `true`, `"vp"`, `[8, 16, 16]`), or as a string if it is not one
    (`model.process=ve`)."""
    target, sep, value = text.partition("=")
    section, dot, name = target.strip().partition(".")
    if not sep or not dot or not section or not name:
        raise ConfigError(
            f"`--set {text}`: expected TABLE.KEY=VALUE, e.g. `--set train.lr=1e-3` or "
            f"`--set model.process=ve`."
        )
    try:
        parsed: Any = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return section.strip(), name.strip(), parsed, f"`--set {text}`"


def load_config(path: str | Path, overrides: Sequence[tuple[str, str, Any, str]] = ()) -> RunConfig:
    """Read and validate the TOML file at `path`, with `overrides` `(table, key, value,
    origin)` applied before the validation (`origin`, e.g. `` `--out` ``, names the override
    in an error); raise `ConfigError` with the reason."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist.")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} is not a file.")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); save the configuration "
            f"as UTF-8."
        ) from None
    except OSError as err:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {err.strerror}.") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}.") from None
    for section, name, value, origin in overrides:
        key = _BY_SECTION.get(section, {}).get(name)
        if key is None:
            valid = ", ".join(f"{k.section}.{k.name}" for k in KEYS)
            raise ConfigError(f"{origin}: unknown key `{section}.{name}`; the keys are: {valid}.")
        _check_value(key, _check_type(key, value, origin), origin)
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: `{section}` must be a table `[{section}]` of keys.")
        table[name] = value
    return parse_config(raw, path, text)


def describe_keys() -> str:
    """Every key, one line each, grouped by table: the `gpm-sde train --help` epilog."""
    lines = ["configuration keys (TOML tables; [data] name and [model] family are required):"]
    for section in SECTIONS:
        lines.append(f"  [{section}]")
        for key in _BY_SECTION[section].values():
            kind = {"int-list": "list of int"}.get(key.kind, key.kind)
            default = "required" if key.required else f"default {_show(key.default)}"
            extra = f" (one of {', '.join(key.choices)})" if key.choices else ""
            only = f" [{', '.join(key.families)}]" if key.families else ""
            text = f"{key.name} ({kind}, {default}){only}: {key.help}{extra}"
            lines.append(
                textwrap.fill(text, 96, initial_indent="    ", subsequent_indent="        ")
            )
    return "\n".join(lines)


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)
