"""Claim `ddpm-exact-eps` (texts in `ddpm_exact_eps.md`): ancestral sampling with the exact noise
prediction recovers the data law."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from gpm_sde import DDPM, GaussianMixture, ddpm
from gpm_sde.metrics import mmd_permutation_test
from gpm_sde.samplers import ddpm_ancestral, exact_eps_model
from gpm_sde.verify import moment_z_scores

from ..figures import CloudPanel, panel_row
from ..laws import mixture_2d
from ..types import Claim, Measurement, Parts, table

SEED = 2020_1206
Z_TOLERANCE = 5.0
FAMILY_LEVEL = 0.01
PERMUTATIONS = 999
HEADER = ["variance", "z mean₁", "z mean₂", "z Σ₁₁", "z Σ₁₂", "z Σ₂₂", "region freq."]
HEADER += ["z regions", "MMD p", "bias (SE)"]
VARIANCES = {"posterior": "σ² = β̃", "beta": "σ² = β"}  # the reverse variances, fast: β̃ only
CONTROL_WEIGHTS = (0.3, 0.4, 0.3)  # the control's ε is that of the data with these weights
LAW = mixture_2d()  # weights 0.2/0.5/0.3
EXTENT = (-4.0, 4.0, -3.0, 5.0)  # of the figure's panels


@eqx.filter_jit
def _sample(chain: DDPM, law: GaussianMixture, key: PRNGKeyArray, m: int, variance: str) -> Array:
    """`ddpm_ancestral` with the exact ε of `law`, from `m` draws of $\\mathcal{N}(0, I)$."""
    x_key, z_key = jr.split(key)
    x_n, eps_model = jr.normal(x_key, (m, 2)), exact_eps_model(chain, law)
    return ddpm_ancestral(chain, eps_model, z_key, x_init=x_n, variance=variance).x


def _exact_draws(rng: np.random.Generator, m: int) -> np.ndarray:
    """Exact draws of the data law in NumPy (nothing to compile)."""
    w, means, covs = (np.asarray(v) for v in (LAW.weights, LAW.means, LAW.covs))
    k, z = rng.choice(len(w), size=m, p=w), rng.standard_normal((m, means.shape[1]))
    return means[k] + np.einsum("nij,nj->ni", np.linalg.cholesky(covs)[k], z)


def _frequencies(x: np.ndarray) -> np.ndarray:
    """The share of points whose component of largest responsibility under the data law is $k$."""
    labels = np.argmax(np.asarray(jax.vmap(LAW.responsibilities)(jnp.asarray(x))), axis=1)
    return np.bincount(labels, minlength=len(CONTROL_WEIGHTS)) / len(x)


def _join(values: np.ndarray, spec: str, sep: str = ", ") -> str:
    return sep.join(format(v, spec) for v in values)


def _bias(chain: DDPM, variance: str, x: np.ndarray, z_moments: np.ndarray) -> float:
    r"""The finite-N bias of the moment z-scores `z_moments` of `x`, estimated by treating the
    mixture as separated components: the chain's output law with the exact ε of each component
    alone, mixed with the data weights. For Gaussian data $\mathcal{N}(\mu, \Sigma)$ the reverse
    step is affine, $x_{n-1} = A_n x_n + b_n + \sigma_n z$ with $A_n = (I - \beta_n
    V_n^{-1})/\sqrt{\alpha_n}$, $b_n = \beta_n \sqrt{\bar\alpha_n}V_n^{-1}\mu/\sqrt{\alpha_n}$,
    $V_n = \bar\alpha_n\Sigma + (1 - \bar\alpha_n)I$: its mean and covariance follow exactly."""
    betas = np.asarray(chain.betas)
    log_ab = np.concatenate([[0.0], np.cumsum(np.log1p(-betas))])
    mean, cov, eye = np.asarray(LAW.means), np.asarray(LAW.covs), np.eye(2)
    m, c = np.zeros_like(mean), np.broadcast_to(eye, cov.shape)
    for n in range(chain.n_steps, 0, -1):
        beta, ab = betas[n - 1], np.exp(log_ab[n])
        prec = np.linalg.inv(ab * cov + (1.0 - ab) * eye)
        a = (eye - beta * prec) / np.sqrt(1.0 - beta)
        b = beta * np.sqrt(ab) * np.einsum("kij,kj->ki", prec, mean) / np.sqrt(1.0 - beta)
        var = beta if variance == "beta" else -np.expm1(log_ab[n - 1]) / -np.expm1(log_ab[n]) * beta
        m = np.einsum("kij,kj->ki", a, m) + b
        c = a @ c @ a.transpose(0, 2, 1) + (var if n > 1 else 0.0) * eye
    law = GaussianMixture(LAW.weights, m, c)
    return float(np.abs(z_moments - moment_z_scores(x, law.mean(), law.covariance())).max())


def run(fast: bool, out_dir: Path) -> Measurement:
    m, m_ref, n_mmd = (5000, 100_000, 300) if fast else (30_000, 1_000_000, 600)
    variances = list(VARIANCES.items())[: 1 if fast else 2]
    chain, key = ddpm(), jr.key(SEED)
    exact = _exact_draws(np.random.default_rng(SEED), m_ref)
    ref = _frequencies(exact)
    se = np.sqrt(ref * (1 - ref) * (1.0 / m + 1.0 / m_ref))  # of a region frequency, two-sample
    results, rows, clouds = [], [], [("exact data", exact[:4000], ref)]
    for i, (variance, label) in enumerate(variances):
        x = np.asarray(_sample(chain, LAW, jr.fold_in(key, 1 + i), m, variance))
        freqs = _frequencies(x)
        pair = (jnp.asarray(x[:n_mmd]), jnp.asarray(exact[-n_mmd:]))
        p = float(mmd_permutation_test(jr.fold_in(key, 10 + i), *pair, PERMUTATIONS)[1])
        z_moments = np.asarray(moment_z_scores(x, LAW.mean(), LAW.covariance()))
        z_regions = (freqs - ref) / se
        bias = _bias(chain, variance, x, z_moments)
        results.append((np.concatenate([z_moments, z_regions]), p, bias))
        cells = [_join(freqs, ".4f"), _join(z_regions, "+.2f"), f"{p:.3f}", f"{bias:.2f}"]
        rows.append([label, *(f"{v:+.2f}" for v in z_moments), *cells])
        clouds.append((f"DDPM, exact ε, {label}", x, freqs))
    wrong = GaussianMixture(np.asarray(CONTROL_WEIGHTS), LAW.means, LAW.covs)
    x_ctl = np.asarray(_sample(chain, wrong, jr.fold_in(key, 20), m, "posterior"))
    ctl_freqs = _frequencies(x_ctl)
    clouds.append((f"control: ε of weights {CONTROL_WEIGHTS}", x_ctl, ctl_freqs))
    threshold = FAMILY_LEVEL / len(variances)
    zs, p_values, biases = zip(*results, strict=True)
    z_max, n_z = max(float(np.abs(z).max()) for z in zs), sum(z.size for z in zs)
    parts = Parts()
    parts.add("max \\|z\\| (moments and region frequencies)", z_max, Z_TOLERANCE, ".2f")
    parts.add("Bonferroni threshold / smallest MMD p-value", threshold / min(p_values), 1.0, ".2f")
    values = dict(
        parts=parts.table(), m=m, m_ref=m_ref, ref=_join(ref, ".4f"), n_mmd=n_mmd,
        permutations=PERMUTATIONS, threshold=threshold, runs=table(HEADER, rows),
        control_weights=CONTROL_WEIGHTS, control_freqs=_join(ctl_freqs, ".4f"),
        z_control=float(np.abs((ctl_freqs - ref) / se).max()), n_z=n_z,
        false_alarm=n_z * 5.7e-7, family_level=FAMILY_LEVEL, p_floor=1 / (PERMUTATIONS + 1),
        bias=max(biases),
    )  # fmt: skip
    figure = panel_row(
        [CloudPanel(f"{t}\nregions {_join(f, '.3f', '/')}", x, LAW, EXTENT) for t, x, f in clouds],
        "DDPM ancestral sampling (N = 1000), exact noise prediction, over the data contours",
        out_dir / "ddpm-exact-eps.png",
    )
    return Measurement(parts.ratio, 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
