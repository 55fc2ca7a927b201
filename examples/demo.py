r"""One law, many dynamics: the library's two invariances on GPM's five-Gaussian toy, in a minute.

1. **DiffFlow** (Zhang et al. 2023) from $\mathcal{N}(0, I)$ towards the annealed data
   $q_{\sigma(s)}$, at three noise levels $g \in \{0, \tfrac12\sqrt{2\beta}, \sqrt{2\beta}\}$:
   the GAN end (deterministic interacting particles, generated score `KernelScore` estimated
   from the cloud itself), a middle member, and the Langevin end. The law solves a
   Fokker–Planck equation free of $g$ (the noise level only reweights the diffusion against
   the score part of the drift), so the three clouds should agree at every time, up to the
   kernel estimator's bias and Monte-Carlo error.
2. **The reverse λ-family** of the VP process with the exact mixture score
   (`MixtureMarginalScore`) at $\lambda \in \{0, \tfrac12 g, g\}$ (the probability-flow ODE,
   a half-noise member, the reverse SDE): all have the marginals $p_{T-s}$ of the forward
   process.

The demo writes `demo.png` (clouds and first-coordinate marginals of every run),
`metrics.md` and `metrics.json` (MMD to the data, and the gap between the members of each
family at two times, next to the MMD between two independent data samples, the noise floor).
`gpm-sde demo` runs this script from a clone of the repository.

    python examples/demo.py                       # about a minute on a laptop CPU
    python examples/demo.py --fast --out /tmp/demo
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from gpm_sde import processes
from gpm_sde.data import five_gaussians
from gpm_sde.distributions import GaussianMixture
from gpm_sde.flows import diffflow
from gpm_sde.metrics import median_heuristic_bandwidths, mmd
from gpm_sde.samplers import reverse_sde_sample
from gpm_sde.scores import AnnealedScore, KernelScore, MixtureMarginalScore, SmoothedMixtureScore
from gpm_sde.solve import simulate

BETA = 1.0
T_FLOW = 3.0
SIGMA = (2.0, 0.3)  # σ(0), σ(T): the data smoothing of DiffFlow, annealed linearly
EPS = 1e-3


@dataclass(frozen=True)
class Settings:
    """Sizes of the demo: particles, DiffFlow Euler steps and reverse-family steps (multiples
    of 4 and 2, so the intermediate save times are grid points)."""

    n: int
    flow_steps: int
    reverse_steps: int
    bandwidth: float


FULL = Settings(n=4000, flow_steps=200, reverse_steps=400, bandwidth=0.35)
FAST = Settings(n=500, flow_steps=60, reverse_steps=100, bandwidth=0.35 * 4**0.25)


@dataclass
class Run:
    """One simulated member: its family, label, clouds at the two save times, wall time."""

    family: str
    label: str
    mid: np.ndarray
    end: np.ndarray
    seconds: float


class _ScaledDiffusion(eqx.Module):
    """$\\lambda(s) = c\\,g(T - s)$, a member of the reverse family ($c$ an array, so that
    every $c$ shares one compilation)."""

    process: processes.AbstractLinearProcess
    c: Float[Array, ""]

    def __call__(self, s: Float[ArrayLike, ""]) -> Float[Array, ""]:
        return self.c * self.process.diffusion(self.process.T - s)


class _AnnealedSigma(eqx.Module):
    """$\\sigma(s)$ linear from `SIGMA[0]` at $s = 0$ to `SIGMA[1]` at $s = T$."""

    def __call__(self, s: Float[ArrayLike, ""]) -> Float[Array, ""]:
        return jnp.asarray(SIGMA[0] + (SIGMA[1] - SIGMA[0]) * s / T_FLOW)


def _diffflow_run(
    law: GaussianMixture, g: float, settings: Settings, key: Any
) -> tuple[np.ndarray, np.ndarray]:
    real = AnnealedScore(SmoothedMixtureScore(law), _AnnealedSigma())
    h = settings.bandwidth * (settings.n / 2000) ** -0.25
    # g is an array, so the three members share one compilation; at g = 0 Euler–Maruyama
    # adds zero noise and is the Euler scheme of the deterministic flow.
    sde = diffflow(real, KernelScore(h), BETA, jnp.asarray(g))
    k0, kw = jr.split(key)
    x0 = jr.normal(k0, (settings.n, 2))
    saveat = diffrax.SaveAt(ts=jnp.asarray([T_FLOW / 4, T_FLOW]))
    sol = simulate(sde, x0, kw, t1=T_FLOW, steps=settings.flow_steps, saveat=saveat)
    assert sol.ys is not None
    return np.asarray(sol.ys[0]), np.asarray(sol.ys[1])


def _reverse_run(
    law: GaussianMixture, c: float, settings: Settings, key: Any
) -> tuple[np.ndarray, np.ndarray]:
    process = processes.vp()
    score = MixtureMarginalScore(process, law)
    # λ = c·g with c an array: one compilation for the three members; at λ = 0 the scheme is
    # Euler's method for the probability-flow ODE.
    lam = _ScaledDiffusion(process, jnp.asarray(c))
    t1 = process.T - EPS
    saveat = diffrax.SaveAt(ts=jnp.asarray([t1 / 2, t1]))
    out = reverse_sde_sample(
        process, score, key, settings.n, (2,), steps=settings.reverse_steps, lam=lam, saveat=saveat
    )
    assert out.ys is not None
    return np.asarray(out.ys[0]), np.asarray(out.x)


def _mmd(x: np.ndarray, y: np.ndarray, bandwidths: Any) -> float:
    """$\\sqrt{\\mathrm{MMD}^2_b}$ under a fixed kernel (0 for identical laws, up to the
    sampling error)."""
    value = mmd(jnp.asarray(x), jnp.asarray(y), bandwidths, biased=True)
    return float(jnp.sqrt(jnp.maximum(value, 0.0)))


def _metrics(runs: list[Run], data: np.ndarray, data2: np.ndarray) -> dict[str, Any]:
    bw = median_heuristic_bandwidths(jnp.asarray(data), jnp.asarray(data2))
    reference = {"DiffFlow": runs[0], "reverse λ-family": runs[5]}
    rows = []
    for r in runs:
        ref = reference[r.family]
        rows.append(
            {
                "family": r.family,
                "member": r.label,
                "mmd_to_data": _mmd(r.end, data, bw),
                "gap_mid": None if r is ref else _mmd(r.mid, ref.mid, bw),
                "gap_end": None if r is ref else _mmd(r.end, ref.end, bw),
                "reference": ref.label,
                "seconds": r.seconds,
            }
        )
    return {"rows": rows, "noise_floor": _mmd(data2, data, bw), "n": int(data.shape[0])}


def _markdown(metrics: dict[str, Any], settings: Settings) -> str:
    def fmt(v: float | None) -> str:
        return "—" if v is None else f"{v:.4f}"

    lines = [
        "# gpm-sde demo: one law, many dynamics",
        "",
        f"Data: `gpm_sde.data.five_gaussians()`; {settings.n} particles per run. MMD is "
        "$\\sqrt{\\mathrm{MMD}^2_b}$ under one Gaussian kernel (median-heuristic bandwidths of "
        "the data). *gap*: MMD between a member's cloud and the reference member's cloud "
        "(independent starts and noise) at the same time: in transit ($s = T/4$ for "
        "DiffFlow, $s = T/2$ for the reverse family) and at the end.",
        "",
        "| family | member | MMD to data | gap in transit | gap at the end | reference "
        "| time (s) |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in metrics["rows"]:
        lines.append(
            f"| {r['family']} | {r['member']} | {fmt(r['mmd_to_data'])} | {fmt(r['gap_mid'])} "
            f"| {fmt(r['gap_end'])} | {r['reference']} | {r['seconds']:.1f} |"
        )
    floor = metrics["noise_floor"]
    lines += [
        f"| noise floor | two independent data samples | {floor:.4f} | | | | |",
        "",
        "Every gap should be of the order of the noise floor: the members of each family "
        "share their marginals. DiffFlow at $g = 0$ uses the kernel estimate of the "
        "generated score, whose bandwidth makes its cloud slightly narrower (a bias that "
        "shrinks as the number of particles grows); its target at the end is the smoothed "
        f"data $q_{{\\sigma}}$, $\\sigma = {SIGMA[1]:g}$, not $q$ itself.",
    ]
    return "\n".join(lines) + "\n"


def _text_table(metrics: dict[str, Any]) -> str:
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    head = f"{'family':<18} {'member':<12} {'MMD data':>9} {'gap mid':>9} {'gap end':>9} {'s':>6}"
    out = [head, "-" * len(head)]
    for r in metrics["rows"]:
        out.append(
            f"{r['family']:<18} {r['member']:<12} {fmt(r['mmd_to_data']):>9} "
            f"{fmt(r['gap_mid']):>9} {fmt(r['gap_end']):>9} {r['seconds']:>6.1f}"
        )
    out.append(f"{'noise floor (two data samples)':<31} {metrics['noise_floor']:>9.4f}")
    return "\n".join(out)


MISSING = 'matplotlib is not installed (pip install "gpm_sde[plot]"): figure skipped'


def pyplot() -> Any:
    """`matplotlib.pyplot` with the Agg backend, or `None` when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def mixture_density_1d(
    weights: np.ndarray, means: np.ndarray, covs: np.ndarray, axis: int, grid: np.ndarray
) -> np.ndarray:
    """The density of coordinate `axis` of a Gaussian mixture on `grid`."""
    mu = means[:, axis][:, None]
    var = covs[:, axis, axis][:, None]
    comps = np.exp(-0.5 * (grid[None] - mu) ** 2 / var) / np.sqrt(2 * np.pi * var)
    return (weights[:, None] * comps).sum(axis=0)


def histogram_panel(
    ax: Any,
    clouds: dict[str, np.ndarray],
    grid: np.ndarray,
    exact: np.ndarray | None,
    title: str,
    colors: Sequence[str],
) -> None:
    """Overlaid step histograms of the first coordinate of each cloud (and an exact density)."""
    bins = np.linspace(grid[0], grid[-1], 50)
    for (name, y), color in zip(clouds.items(), colors, strict=False):
        ax.hist(y[:, 0], bins=bins, density=True, histtype="step", lw=1.5, color=color, label=name)
    if exact is not None:
        ax.plot(grid, exact, "k--", lw=1, label="exact")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x₁")
    ax.legend(fontsize=7)


def _figure(runs: list[Run], law: GaussianMixture, path: Path) -> Path | None:
    plt = pyplot()
    if plt is None:
        return None
    colors = ("tab:blue", "tab:orange", "tab:green")
    target = law.convolve(SIGMA[1])
    lim = 5.0
    grid_1d = np.linspace(-lim, lim, 300)
    xx, yy = np.meshgrid(np.linspace(-lim, lim, 120), np.linspace(-lim, lim, 120))
    pts = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], axis=1))

    def exact(mixture: Any) -> np.ndarray:
        w, m, c = (np.asarray(v) for v in (mixture.weights, mixture.means, mixture.covs))
        return mixture_density_1d(w, m, c, 0, grid_1d)

    process = processes.vp()
    t1 = process.T - EPS
    fig, axes = plt.subplots(2, 5, figsize=(19, 7.6))
    for row, (family, contour_law) in enumerate((("DiffFlow", target), ("reverse λ-family", law))):
        members = [r for r in runs if r.family == family]
        logq = np.asarray(jax.vmap(contour_law.log_prob)(pts)).reshape(xx.shape)
        for ax, r, color in zip(axes[row, :3], members, colors, strict=True):
            levels = np.linspace(logq.max() - 6.0, logq.max(), 5)
            ax.contour(xx, yy, logq, levels=levels, colors="0.6", linewidths=0.6)
            ax.scatter(*r.end.T, s=1.5, c=color, alpha=0.5)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_title(f"{family}: {r.label}, end", fontsize=9)
        if family == "DiffFlow":
            mid_exact, end_exact = None, exact(target)
            mid_title = f"x₁ marginals at s = T/4 = {T_FLOW / 4:g}"
            end_title = f"x₁ marginals at s = T = {T_FLOW:g} (exact: q_σ, σ = {SIGMA[1]:g})"
        else:
            mid_exact = exact(process.marginal(law, process.T - t1 / 2))
            end_exact = exact(process.marginal(law, EPS))
            mid_title = "x₁ marginals at s = T/2 (exact: p_{T-s})"
            end_title = "x₁ marginals at the end (exact: the data)"
        histogram_panel(
            axes[row, 3], {r.label: r.mid for r in members}, grid_1d, mid_exact, mid_title, colors
        )
        histogram_panel(
            axes[row, 4], {r.label: r.end for r in members}, grid_1d, end_exact, end_title, colors
        )
    fig.suptitle(
        "One law, many dynamics: DiffFlow across g (top) and the reverse λ-family (bottom) "
        "on five Gaussians"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def demo(out: Path, *, fast: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Run the demo, write its files under `out`, print the table; return the metrics (with
    the written paths under `"files"`)."""
    settings = FAST if fast else FULL
    law = five_gaussians()
    key = jr.key(seed)
    g_end = math.sqrt(2 * BETA)
    plan = [
        ("DiffFlow", "g = 0", lambda k: _diffflow_run(law, 0.0, settings, k)),
        ("DiffFlow", "g = ½√(2β)", lambda k: _diffflow_run(law, 0.5 * g_end, settings, k)),
        ("DiffFlow", "g = √(2β)", lambda k: _diffflow_run(law, g_end, settings, k)),
        ("reverse λ-family", "λ = 0", lambda k: _reverse_run(law, 0.0, settings, k)),
        ("reverse λ-family", "λ = g/2", lambda k: _reverse_run(law, 0.5, settings, k)),
        ("reverse λ-family", "λ = g", lambda k: _reverse_run(law, 1.0, settings, k)),
    ]
    runs = []
    for i, (family, label, fn) in enumerate(plan):
        start = time.perf_counter()
        mid, end = fn(jr.fold_in(key, i))
        runs.append(Run(family, label, mid, end, time.perf_counter() - start))
        if progress:
            print(f"[{i + 1}/{len(plan)}] {family}, {label}: {runs[-1].seconds:.1f} s", flush=True)
    data = np.asarray(law.sample(jr.fold_in(key, 100), settings.n))
    data2 = np.asarray(law.sample(jr.fold_in(key, 101), settings.n))
    metrics = _metrics(runs, data, data2)
    out.mkdir(parents=True, exist_ok=True)
    md, js, png = out / "metrics.md", out / "metrics.json", out / "demo.png"
    md.write_text(_markdown(metrics, settings), encoding="utf-8")
    js.write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    figure = _figure(runs, law, png)
    print(_text_table(metrics))
    files = [md, js] + ([figure] if figure is not None else [])
    for f in files:
        print(f"wrote {f}")
    if figure is None:
        print(MISSING)
    metrics["files"] = [str(f) for f in files]
    return metrics


def parser() -> argparse.ArgumentParser:
    """The options of the demo (the same as `gpm-sde demo`)."""
    parser = argparse.ArgumentParser(
        description=(
            "On GPM's five-Gaussian toy law: (a) DiffFlow at g = 0, ½√(2β), √(2β) with the "
            "mean-field kernel generated score and the exact annealed data score, and (b) the "
            "reverse λ-family of the VP process (λ = 0, g/2, g) with the exact score. Writes "
            "a figure of the clouds and marginals (demo.png) and a table of metrics "
            "(metrics.md, metrics.json: MMD to the data and the gaps between members), and "
            "prints the table. About a minute on a laptop CPU."
        )
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=Path("reports/demo"),
        help="output folder (default: reports/demo)",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help=f"tiny settings ({FAST.n} particles, fewer steps): a smoke test, about 20 s",
    )
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default: 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo with the command-line arguments `argv`; return the exit code."""
    args = parser().parse_args(argv)
    saved = bool(jax.config.read("jax_enable_x64"))
    jax.config.update("jax_enable_x64", False)  # float32: the demo's tolerance is statistical
    try:
        demo(args.out, fast=args.fast, seed=args.seed)
    finally:
        jax.config.update("jax_enable_x64", saved)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
