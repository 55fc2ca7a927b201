"""Claim `elbo-ppca` (texts in `elbo_ppca.md`): on probabilistic PCA the ELBO with the exact
posterior as encoder is the log-likelihood, its gap for any other encoder is the KL to the
posterior, and a trained linear VAE reaches the maximum likelihood."""

from __future__ import annotations

import math
from pathlib import Path

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from gpm_sde import losses, nn, train

from ..fitting import adam_cosine
from ..ppca import PPCA, affine_encoder, exact_elbo, kl_gauss, ml_fit, orthogonal_columns
from ..types import Claim, Measurement, Parts

SEED = 1999_0611
D, K, SIGMA = 5, 2, 0.5
MU = np.linspace(-1.0, 1.0, D)
ROUND_OFF, Z_TOLERANCE = 1e-10, 5.0
POINTS, DRAWS = 500, 8  # (i) points and draws per point
MC_REPS = 400  # (ii) draws per point of the Monte Carlo ELBO
LR = 3e-2  # (iii) the peak learning rate of Adam


def _general_w() -> np.ndarray:
    return 0.5 * np.random.default_rng(SEED).standard_normal((D, K))


def run(fast: bool, out_dir: Path) -> Measurement:
    del out_dir
    n_train, steps, batch = (2000, 2000, 256) if fast else (4000, 4000, 512)
    parts = Parts()
    # (i) the exact posterior as encoder (W with orthogonal columns: a diagonal posterior)
    exact_model = PPCA(orthogonal_columns(SEED, D, (2.0, 0.7)), MU, SIGMA)
    a, b, cov = exact_model.posterior()
    off_diagonal = float(np.max(np.abs(cov - np.diag(np.diag(cov)))))
    enc, dec = affine_encoder(a, b, 0.5 * np.log(np.diag(cov))), exact_model.decoder()
    x = exact_model.sample(SEED, POINTS)
    log_p = exact_model.log_p(x)
    xs = np.repeat(x, DRAWS, axis=0)
    draws = np.asarray(losses.elbo(enc, dec, xs, jr.key(1), kl="sample", reduction="none"))
    err_draw = float(np.max(np.abs(draws - np.repeat(log_p, DRAWS))))
    err_exp = float(np.max(np.abs(exact_elbo(enc, dec, x) - log_p)))
    parts.add("(i) max \\|sampled-KL ELBO draw − log p\\|, exact posterior", err_draw, ROUND_OFF)
    parts.add("(i) max \\|E ELBO − log p\\| (analytic KL), exact posterior", err_exp, ROUND_OFF)
    # (ii) other encoders on a general W: the gap is KL(q || p(z|x))
    model = PPCA(_general_w(), MU, SIGMA)
    a, b, cov = model.posterior()
    x = model.sample(SEED + 1, POINTS)
    log_p = model.log_p(x)
    encoders = {
        "posterior mean, posterior's marginal variances": (a, b, 0.5 * np.log(np.diag(cov))),
        "0.8 × posterior mean + 0.3, std 0.6": (0.8 * a, b + 0.3, np.log([0.6, 0.6])),
    }
    gap_errs, zs, rows = [], [], []
    for i, (label, (ea, eb, els)) in enumerate(encoders.items()):
        enc = affine_encoder(ea, eb, els)
        kl = kl_gauss(x @ ea.T + eb, np.diag(np.exp(2 * els)), x @ a.T + b, cov)
        bound = exact_elbo(enc, model.decoder(), x)
        gap_errs.append(float(np.max(np.abs(log_p - bound - kl))))
        est = np.asarray(
            losses.elbo(
                enc, model.decoder(), np.repeat(x, MC_REPS, 0), jr.key(10 + i), reduction="none"
            )
        ).reshape(POINTS, MC_REPS)
        diff = est - (log_p - kl)[:, None]
        zs.append(float(diff.mean() / (diff.std() / math.sqrt(diff.size))))
        rows.append(f"| {label} | {kl.mean():.4f} | {bound.mean():.4f} | {est.mean():.4f} |")
    parts.add("(ii) max \\|log p − E ELBO − KL(q‖p(z\\|x))\\|", max(gap_errs), ROUND_OFF)
    parts.add(
        "(ii) max \\|z\\| of the Monte Carlo ELBO", max(abs(z) for z in zs), Z_TOLERANCE, ".2f"
    )
    # (iii) a linear VAE trained by fit_vae reaches the maximum likelihood
    x = model.sample(SEED + 2, n_train)
    ml = ml_fit(x, K)
    enc = nn.GaussianEncoder(D, K, 8, 0, key=jr.key(20))
    dec = nn.GaussianDecoder(K, D, 8, 0, key=jr.key(21))
    (enc, dec), _ = train.fit_vae(
        enc, dec, jnp.asarray(x), jr.key(22), steps=steps, batch_size=batch,
        optimizer=adam_cosine(LR, steps), progress=False, chunk=500,
    )  # fmt: skip
    trained = float(exact_elbo(enc, dec, x).mean())
    ll_ml, ll_true = float(ml.log_p(x).mean()), float(model.log_p(x).mean())
    n_params = D + D * K - K * (K - 1) // 2 + 1
    resolution = n_params / (2 * n_train)
    gap = ll_ml - trained
    parts.add("(iii) mean log p_ML − mean ELBO of the trained VAE (nats)", gap, resolution, ".2e")
    measured = parts.ratio if gap > -ROUND_OFF else math.inf  # the ELBO may not exceed log p_ML
    values = dict(
        parts=parts.table(), d=D, k=K, sigma=SIGMA, points=POINTS, draws=DRAWS,
        off_diagonal=off_diagonal, mc_reps=MC_REPS, encoders="\n".join(rows),
        n_train=n_train, steps=steps, batch=batch, lr=LR, trained=trained, ll_ml=ll_ml,
        ll_true=ll_true, n_params=n_params, resolution=resolution,
    )  # fmt: skip
    return Measurement(measured, 1.0, values)


CLAIM = Claim.load(__file__, run)
