"""Claim `iwae-monotone` (texts in `iwae_monotone.md`): the importance-weighted bound grows
with the number of samples and tends to the log-likelihood, on probabilistic PCA."""

from __future__ import annotations

import math
from pathlib import Path

import jax.random as jr
import numpy as np

from gpm_sde import losses

from ..ppca import PPCA, affine_encoder, exact_elbo
from ..types import Claim, Measurement, Parts, table

SEED = 2016_0502
D, K, SIGMA = 5, 2, 0.5
MU = np.linspace(-1.0, 1.0, D)
POINTS = 100
Z_TOLERANCE = 5.0
GAP_FRACTION = 0.1  # log p − L_K at the largest K may be at most this share of log p − L_1


def run(fast: bool, out_dir: Path) -> Measurement:
    del out_dir
    ks, reps = ((1, 4, 16, 64), 200) if fast else ((1, 4, 16, 64, 256), 200)
    model = PPCA(np.random.default_rng(SEED).standard_normal((D, K)), MU, SIGMA)
    a, b, _ = model.posterior()
    enc, dec = affine_encoder(0.7 * a, b + 0.3, np.log([0.8, 0.8])), model.decoder()
    x = model.sample(SEED, POINTS)
    log_p = model.log_p(x)
    xs = np.repeat(x, reps, axis=0)
    means, ses, gaps = [], [], []
    for i, k in enumerate(ks):
        est = np.asarray(losses.iwae_bound(enc, dec, xs, jr.key(i), k=k, reduction="none"))
        diff = est.reshape(POINTS, reps) - log_p[:, None]  # L_K − log p per draw
        means.append(float(diff.mean()))
        ses.append(float(diff.std() / math.sqrt(diff.size)))
        gaps.append(-means[-1])
        if k == 1:  # one draw of log w − log p per row: the relative variance of the weights
            rel_var = float(np.mean(np.exp(2 * diff)) - 1.0)
    steps = [(means[j + 1] - means[j]) / math.hypot(ses[j], ses[j + 1]) for j in range(len(ks) - 1)]
    elbo = float(np.mean(exact_elbo(enc, dec, x) - log_p))
    z_elbo = (means[0] - elbo) / ses[0]
    parts = Parts()
    parts.add(
        "largest −z of L_{4K} − L_K (monotone in K)", max(0.0, -min(steps)), Z_TOLERANCE, ".2f"
    )
    parts.add(
        "largest z of L_K − log p (a lower bound)",
        max(0.0, max(m / s for m, s in zip(means, ses, strict=True))),
        Z_TOLERANCE,
        ".2f",
    )
    parts.add("\\|z\\| of L_1 against the closed-form ELBO", abs(z_elbo), Z_TOLERANCE, ".2f")
    parts.add(f"(log p − L_{ks[-1]}) / (log p − L_1)", gaps[-1] / gaps[0], GAP_FRACTION, ".3f")
    rows = [
        [
            str(k),
            f"{m:+.5f}",
            f"{s:.1e}",
            f"{rel_var / (2 * k):.5f}",
            "" if j == 0 else f"{steps[j - 1]:+.1f}",
        ]
        for j, (k, m, s) in enumerate(zip(ks, means, ses, strict=True))
    ]
    header = ["K", "mean L_K − log p", "SE", "Var(w)/2K", "z of the step from the previous K"]
    values = dict(
        parts=parts.table(), d=D, k=K, sigma=SIGMA, points=POINTS, reps=reps,
        bounds=table(header, rows), elbo=elbo, rel_var=rel_var, k_max=ks[-1],
        gap_fraction=GAP_FRACTION,
    )  # fmt: skip
    return Measurement(parts.ratio, 1.0, values)


CLAIM = Claim.load(__file__, run)
