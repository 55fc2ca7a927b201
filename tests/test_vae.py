"""VAE, IWAE and VQ-VAE against independent closed forms.

The linear-Gaussian model of probabilistic PCA (Tipping & Bishop 1999), $x = Wz + \\mu +
\\sigma\\epsilon$, has $p(x) = N(\\mu, WW^T + \\sigma^2 I)$ and the exact posterior
$p(z | x) = N(M^{-1}W^T(x - \\mu), \\sigma^2 M^{-1})$, $M = W^TW + \\sigma^2 I$: the library's
`GaussianEncoder`/`GaussianDecoder` with `depth=0` are exactly this model, so the ELBO, its
gap and the IWAE bound can be checked against NumPy formulas."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gpm_sde
from gpm_sde import losses, nn, train

D, K, SIGMA = 3, 2, 0.5
MU = np.array([0.3, -0.2, 0.5])
Z_TOL = 5.0  # |z| bound of the Monte Carlo checks: a false alarm about 6e-7 per check


def _orthogonal_w() -> np.ndarray:
    """W = Q diag(l) with orthonormal Q: the posterior covariance σ²M⁻¹ is diagonal, so the
    diagonal Gaussian encoder can be the exact posterior."""
    q, _ = np.linalg.qr(np.array([[1.0, 0.2], [0.4, -1.0], [0.3, 0.5]]))
    return q * np.array([1.5, 0.8])


W_GENERAL = np.array([[1.0, 0.4], [0.5, -0.9], [-0.3, 0.7]])


def _decoder(w: np.ndarray) -> nn.GaussianDecoder:
    dec = nn.GaussianDecoder(K, D, 8, 0, key=jr.key(0), log_std=math.log(SIGMA))
    layer = dec.mlp.layers[0]
    return eqx.tree_at(lambda d: (d.mlp.layers[0].weight, d.mlp.layers[0].bias), dec,
                       (jnp.asarray(w, layer.weight.dtype), jnp.asarray(MU)))  # fmt: skip


def _encoder(a: np.ndarray, b: np.ndarray, log_s: np.ndarray) -> nn.GaussianEncoder:
    """The affine encoder mean = A x + b, log_std = log_s (constant)."""
    enc = nn.GaussianEncoder(D, K, 8, 0, key=jr.key(1))
    weight = np.concatenate([a, np.zeros((K, D))])
    bias = np.concatenate([b, log_s])
    return eqx.tree_at(
        lambda e: (e.mlp.layers[0].weight, e.mlp.layers[0].bias),
        enc,
        (jnp.asarray(weight), jnp.asarray(bias)),
    )


def _posterior(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, b, Σ_post): posterior mean A x + b, covariance Σ_post (Tipping & Bishop eq. 6)."""
    m = w.T @ w + SIGMA**2 * np.eye(K)
    a = np.linalg.solve(m, w.T)
    return a, -a @ MU, SIGMA**2 * np.linalg.inv(m)


def _log_p(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    c = w @ w.T + SIGMA**2 * np.eye(D)
    r = x - MU
    quad = np.einsum("ni,ij,nj->n", r, np.linalg.inv(c), r)
    return -0.5 * (quad + np.linalg.slogdet(c)[1] + D * math.log(2 * math.pi))


def _expected_log_lik(w: np.ndarray, x: np.ndarray, m: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """E_q log N(x; Wz + μ, σ²I) for q = N(m, diag s2): log N(x; Wm + μ, σ²I) − tr(W S Wᵀ)/2σ²."""
    r = x - m @ w.T - MU
    base = -0.5 * np.sum(r**2, 1) / SIGMA**2 - D * math.log(SIGMA) - 0.5 * D * math.log(2 * math.pi)
    return base - 0.5 * np.sum(w**2 * s2[:, None, :], axis=(1, 2)) / SIGMA**2


def _kl_gauss(m0, s0, m1, s1) -> np.ndarray:
    """KL(N(m0, S0) || N(m1, S1)) per point, S0 (n, k, k) or (k, k)."""
    s1_inv = np.linalg.inv(s1)
    d = m1 - m0
    s0 = np.broadcast_to(s0, (len(m0), K, K))
    return 0.5 * (
        np.einsum("ij,nji->n", s1_inv, s0)
        + np.einsum("ni,ij,nj->n", d, s1_inv, d)
        - K
        + np.linalg.slogdet(s1)[1]
        - np.linalg.slogdet(s0)[1]
    )


X = np.array([[0.1, 0.9, -0.4], [-1.2, 0.3, 0.8], [0.7, -0.5, 2.0], [0.0, 0.0, 0.0]])


def test_optimal_encoder_elbo_equals_log_likelihood_exactly():
    """q = p(z|x): every draw of the sampled-KL ELBO and of the IWAE weights is log p(x)."""
    w = _orthogonal_w()
    a, b, cov = _posterior(w)
    assert np.allclose(cov, np.diag(np.diag(cov)))  # the diagonal encoder can be exact
    enc, dec = _encoder(a, b, 0.5 * np.log(np.diag(cov))), _decoder(w)
    exact = _log_p(w, X)
    per_point = losses.elbo(enc, dec, X, jr.key(2), kl="sample", n_samples=7, reduction="none")
    np.testing.assert_allclose(per_point, exact, rtol=0, atol=1e-12)
    iwae = losses.iwae_bound(enc, dec, X, jr.key(3), k=5, reduction="none")
    np.testing.assert_allclose(iwae, exact, rtol=0, atol=1e-12)
    # Analytic KL + the closed-form expected log-likelihood: the ELBO's expectation, exactly.
    mean, log_std = jax.vmap(enc)(jnp.asarray(X))
    s2 = np.exp(2 * np.asarray(log_std))
    expectation = _expected_log_lik(w, X, np.asarray(mean), s2) - np.asarray(
        losses.gaussian_kl(mean, log_std)
    )
    np.testing.assert_allclose(expectation, exact, rtol=0, atol=1e-12)


def _repeat_estimates(fn, x: np.ndarray, reps: int, key) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of a per-point estimator over `reps` independent draws."""
    vals = np.asarray(fn(np.repeat(x, reps, axis=0), key)).reshape(len(x), reps)
    return vals.mean(1), vals.std(1, ddof=1) / math.sqrt(reps)


@pytest.mark.parametrize("seed", [4, 5])
def test_suboptimal_encoder_gap_is_kl_to_the_posterior(seed: int):
    """log p(x) − ELBO = KL(q || p(z|x)): exactly through the analytic KL and the closed-form
    expected log-likelihood, and within 5 standard errors for the library's Monte Carlo
    estimator with the analytic and the sampled KL."""
    w = W_GENERAL
    a, b, cov = _posterior(w)
    a_q, b_q = 0.8 * a, b + np.array([0.2, -0.1])
    log_s = np.array([-0.7, -0.2])
    enc, dec = _encoder(a_q, b_q, log_s), _decoder(w)
    m_q = X @ a_q.T + b_q
    gap = _kl_gauss(m_q, np.diag(np.exp(2 * log_s)), X @ a.T + b, cov)
    assert np.all(gap > 0.05)  # a visible gap
    target = _log_p(w, X) - gap
    mean, log_std = jax.vmap(enc)(jnp.asarray(X))
    exact = _expected_log_lik(w, X, np.asarray(mean), np.exp(2 * np.asarray(log_std)))
    exact = exact - np.asarray(losses.gaussian_kl(mean, log_std))
    np.testing.assert_allclose(exact, target, rtol=0, atol=1e-12)
    for kl in ("analytic", "sample"):
        est, se = _repeat_estimates(
            lambda x, k: losses.elbo(enc, dec, x, k, kl=kl, reduction="none"),
            X,
            5_000,
            jr.key(seed),
        )
        z = (est - target) / se
        assert np.all(np.abs(z) < Z_TOL), (kl, z)


def test_beta_weights_the_kl_term():
    w = W_GENERAL
    a, b, _ = _posterior(w)
    enc, dec = _encoder(0.9 * a, b, np.array([-0.5, -0.4])), _decoder(w)
    key = jr.key(6)
    kl = np.asarray(losses.gaussian_kl(*jax.vmap(enc)(jnp.asarray(X))))
    one = np.asarray(losses.elbo(enc, dec, X, key, reduction="none"))
    three = np.asarray(losses.elbo(enc, dec, X, key, beta=3.0, reduction="none"))
    np.testing.assert_allclose(three, one - 2.0 * kl, rtol=0, atol=1e-12)


def test_iwae_bound_increases_with_k_towards_log_p():
    """Burda et al. 2016, Theorem 1: L_1 ≤ L_8 ≤ L_64 ≤ log p and L_K → log p. Means over
    2,000 independent draws per K (one point); each step up in K must be positive beyond
    5 standard errors of the difference, L_1 must match the closed-form ELBO within 5 SE, and
    the gap at K = 64 must be under a tenth of the ELBO's (it is about 1/100: the delta method
    gives Var(w)/2K). The theory claim `iwae-monotone` runs the larger version."""
    w = W_GENERAL
    a, b, _ = _posterior(w)
    enc, dec = _encoder(0.8 * a, b + 0.1, np.array([-0.9, -0.5])), _decoder(w)
    x = X[1:2]
    log_p = _log_p(w, x)[0]
    means, ses = [], []
    for i, k in enumerate((1, 8, 64)):
        fn = jax.jit(lambda xx, kk, k=k: losses.iwae_bound(enc, dec, xx, kk, k=k, reduction="none"))
        m, s = _repeat_estimates(fn, x, 2_000, jr.key(10 + i))
        means.append(m[0])
        ses.append(s[0])
    means, ses = np.array(means), np.array(ses)
    steps = np.diff(means) / np.hypot(ses[1:], ses[:-1])
    assert np.all(steps > Z_TOL), steps  # strictly up, far beyond the noise
    assert np.all((means - log_p) / ses < Z_TOL)  # below log p (within noise)
    mean, log_std = jax.vmap(enc)(jnp.asarray(x))
    elbo = _expected_log_lik(w, x, np.asarray(mean), np.exp(2 * np.asarray(log_std)))
    elbo = elbo[0] - float(losses.gaussian_kl(mean, log_std)[0])
    assert abs(means[0] - elbo) / ses[0] < Z_TOL
    gaps = log_p - means
    assert gaps[-1] < 0.1 * gaps[0], gaps


def test_bits_per_dim_of_a_bound():
    """nats → bits/dim: −L/(D ln 2), and with a data scale s: −(L + D log s)/(D ln 2)."""
    w = _orthogonal_w()
    a, b, cov = _posterior(w)
    enc, dec = _encoder(a, b, 0.5 * np.log(np.diag(cov))), _decoder(w)
    nats = float(losses.iwae_bound(enc, dec, X, jr.key(7), k=3))
    np.testing.assert_allclose(nats, _log_p(w, X).mean(), atol=1e-12)
    np.testing.assert_allclose(gpm_sde.bits_per_dim(nats, D), -nats / (D * math.log(2)))
    np.testing.assert_allclose(
        gpm_sde.bits_per_dim(nats, D, scale=0.125),
        -(nats + D * math.log(0.125)) / (D * math.log(2)),
    )


def test_bernoulli_decoder_log_likelihood_by_hand():
    dec = nn.BernoulliDecoder(2, (2, 3), 16, 1, key=jr.key(8))
    z = jnp.array([0.4, -1.1])
    x = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    logits = np.asarray(dec.logits(z))
    p = 1.0 / (1.0 + np.exp(-logits))
    hand = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p))
    np.testing.assert_allclose(dec.log_prob(z, x), hand, rtol=1e-12)
    np.testing.assert_allclose(dec(z), p, rtol=1e-12)
    # Saturated logits stay finite: log p(x=1 | ℓ=40) = −log(1 + e^{−40}).
    big = eqx.tree_at(lambda d: d.mlp.layers[-1].bias, dec, jnp.full(6, 1e4))
    assert np.isfinite(float(big.log_prob(z, x)))


def test_gaussian_decoder_log_likelihood_by_hand():
    dec = nn.GaussianDecoder(2, 4, 16, 2, key=jr.key(9), log_std=-0.3, per_dim_scale=True)
    dec = eqx.tree_at(lambda d: d.log_std, dec, jnp.array([-0.3, 0.1, 0.0, 0.5]))
    z, x = jnp.array([0.2, 0.7]), np.array([0.1, -0.3, 1.2, 0.0])
    m, s = np.asarray(dec(z)), np.exp([-0.3, 0.1, 0.0, 0.5])
    hand = np.sum(-0.5 * ((x - m) / s) ** 2 - np.log(s * np.sqrt(2 * np.pi)))
    np.testing.assert_allclose(dec.log_prob(z, x), hand, rtol=1e-12)


# --- VQ-VAE ---------------------------------------------------------------------------------

CODEBOOK = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
Z_E = np.array([[0.9, 0.2], [0.1, -0.1], [0.2, 1.5], [1.2, -0.3]])  # codes 1, 0, 2, 1


def test_quantizer_lookup_and_straight_through_gradient():
    vq = nn.VectorQuantizer(3, 2, codebook=jnp.asarray(CODEBOOK))
    z_q, idx = vq.lookup(jnp.asarray(Z_E))
    np.testing.assert_array_equal(idx, [1, 0, 2, 1])
    c = np.array([[1.0, -2.0], [0.5, 3.0], [-1.0, 1.0], [2.0, 0.25]])

    def f(out):  # a reconstruction-like term of the decoder input
        return jnp.sum(c * out**2) / 2

    def through(vq, z_e):
        return f(vq(z_e)[0])

    g_vq, g_ze = jax.grad(through, argnums=(0, 1))(vq, jnp.asarray(Z_E))
    # The encoder output receives ∇f at the decoder input z_q, unchanged ...
    np.testing.assert_allclose(g_ze, c * np.asarray(z_q), rtol=1e-12)
    # ... and the codebook nothing.
    np.testing.assert_array_equal(g_vq.codebook, np.zeros_like(CODEBOOK))
    np.testing.assert_allclose(vq(jnp.asarray(Z_E))[0], CODEBOOK[[1, 0, 2, 1]], rtol=1e-15)


class _Identity(eqx.Module):
    def __call__(self, x):
        return x.reshape(2, 2)


def test_vq_vae_loss_terms_and_gradients():
    """Codebook and commitment terms by hand; the reconstruction term gives the codebook no
    gradient, the codebook term gives it 2(e − sg z_e), the commitment term 2β(z_e − sg e)
    to the encoder output."""
    vq = nn.VectorQuantizer(3, 2, codebook=jnp.asarray(CODEBOOK))
    dec = nn.GaussianDecoder((2, 2), 4, 8, 1, key=jr.key(11))
    x = jnp.asarray(Z_E.reshape(2, 4))  # two points, each two code vectors
    beta = 0.3
    loss, aux = losses.vq_vae_loss(_Identity(), dec, vq, x, beta=beta)
    e = CODEBOOK[[1, 0, 2, 1]]
    sq = np.sum((Z_E - e) ** 2, 1).reshape(2, 2).sum(1)
    np.testing.assert_allclose(aux["commitment"], sq.mean(), rtol=1e-12)
    np.testing.assert_allclose(aux["codebook"], sq.mean(), rtol=1e-12)
    z_st = np.asarray(e).reshape(2, 2, 2)
    recon = -np.array([float(dec.log_prob(jnp.asarray(z_st[i]), x[i])) for i in range(2)])
    np.testing.assert_allclose(aux["recon"], recon.mean(), rtol=1e-12)
    np.testing.assert_allclose(loss, recon.mean() + (1 + beta) * sq.mean(), rtol=1e-12)
    np.testing.assert_allclose(
        aux["perplexity"], math.exp(-(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5)))
    )

    def codebook_grad(codebook_loss: bool):
        def fn(vq):
            return losses.vq_vae_loss(
                _Identity(), dec, vq, x, beta=beta, codebook_loss=codebook_loss
            )[0]

        return np.asarray(jax.grad(fn)(vq).codebook)

    np.testing.assert_array_equal(codebook_grad(False), np.zeros_like(CODEBOOK))
    hand = np.zeros_like(CODEBOOK)
    for i, j in enumerate([1, 0, 2, 1]):
        hand[j] += 2 * (CODEBOOK[j] - Z_E[i]) / 2  # mean over the 2 points
    np.testing.assert_allclose(codebook_grad(True), hand, rtol=1e-12)

    # Commitment gradient on the encoder output (reconstruction removed by a constant decoder).
    def commit(z_e):
        _, idx = vq(z_e)
        return beta * jnp.sum((z_e - jax.lax.stop_gradient(vq.codebook[idx])) ** 2)

    np.testing.assert_allclose(jax.grad(commit)(jnp.asarray(Z_E)), 2 * beta * (Z_E - e))


@pytest.mark.parametrize("eps", [0.0, 1e-2])
def test_codebook_ema_update_by_hand(eps: float):
    vq = nn.VectorQuantizer(3, 2, codebook=jnp.asarray(CODEBOOK))
    ema = nn.CodebookEMA(vq, decay=0.9, eps=eps)
    _, idx = vq.lookup(jnp.asarray(Z_E))
    new_ema, new_vq = ema.update(vq, jnp.asarray(Z_E), idx)
    g = 0.9
    n = np.array([1.0, 2.0, 1.0])  # assignments 1, 0, 2, 1
    sums = np.array([Z_E[1], Z_E[0] + Z_E[3], Z_E[2]])
    counts = g * 1.0 + (1 - g) * n
    m = g * CODEBOOK + (1 - g) * sums
    smooth = (counts + eps) / (counts.sum() + 3 * eps) * counts.sum()
    np.testing.assert_allclose(new_ema.cluster_size, counts, rtol=1e-12)
    np.testing.assert_allclose(new_ema.embed_sum, m, rtol=1e-12)
    np.testing.assert_allclose(new_vq.codebook, m / smooth[:, None], rtol=1e-12)
    # An unused code stays where it is (eps = 0): assign everything to code 1.
    _, vq2 = ema.update(vq, jnp.asarray(Z_E), jnp.array([1, 1, 1, 1]))
    if eps == 0.0:
        np.testing.assert_allclose(np.asarray(vq2.codebook)[[0, 2]], CODEBOOK[[0, 2]], rtol=1e-12)


def test_codebook_perplexity_uniform_and_one_hot():
    np.testing.assert_allclose(losses.codebook_perplexity(jnp.arange(8).repeat(3), 8), 8.0)
    np.testing.assert_allclose(losses.codebook_perplexity(jnp.full(10, 2), 8), 1.0)
    np.testing.assert_allclose(losses.codebook_perplexity(jnp.array([0, 0, 1, 1]), 5), 2.0)


def test_latent_codes_and_decode_latents():
    enc = nn.GaussianEncoder((1, 2, 2), 3, 8, 1, key=jr.key(12))
    dec = nn.GaussianDecoder(3, (1, 2, 2), 8, 1, key=jr.key(13))
    x = jr.normal(jr.key(14), (5, 1, 2, 2))
    codes = nn.latent_codes(enc, x)
    np.testing.assert_allclose(codes, jax.vmap(lambda p: enc(p)[0])(x))
    np.testing.assert_allclose(nn.latent_codes(enc, x, batch_size=2), codes, rtol=1e-12)
    out = nn.decode_latents(dec, codes, batch_size=2)
    assert out.shape == (5, 1, 2, 2)
    np.testing.assert_allclose(out, jax.vmap(dec)(codes), rtol=1e-12)


def test_fit_vae_and_fit_vq_vae_run_and_improve():
    """A few steps of each trainer: the loss falls, the histories have their metrics."""
    data = jr.normal(jr.key(15), (256, 4)) * jnp.array([2.0, 1.0, 0.5, 0.1])
    enc = nn.GaussianEncoder(4, 2, 8, 1, key=jr.key(16))
    dec = nn.GaussianDecoder(2, 4, 8, 1, key=jr.key(17))
    (enc, dec), hist = train.fit_vae(
        enc, dec, data, jr.key(18), steps=150, batch_size=64, lr=1e-2, progress=False, chunk=150
    )
    assert set(hist) >= {"loss", "elbo", "kl"}
    assert hist["elbo"][-20:].mean() > hist["elbo"][:20].mean() + 0.5  # SE of each mean ~0.05
    venc = nn.MLPEncoder(4, (2, 2), 8, 1, key=jr.key(19))
    vdec = nn.GaussianDecoder((2, 2), 4, 8, 1, key=jr.key(20))
    vq = nn.VectorQuantizer(8, 2, key=jr.key(21))
    (venc, vdec, vq2), vhist = train.fit_vq_vae(
        venc, vdec, vq, data, jr.key(22), steps=150, batch_size=64, lr=1e-2, progress=False,
        chunk=150,
    )  # fmt: skip
    assert set(vhist) >= {"loss", "recon", "commitment", "perplexity"}
    assert vhist["loss"][-20:].mean() < vhist["loss"][:20].mean()
    assert 1.0 <= vhist["perplexity"][-1] <= 8.0
    assert not np.allclose(vq2.codebook, vq.codebook)  # the EMA moved the codes


@pytest.mark.slow
def test_trained_linear_vae_reaches_the_ppca_likelihood():
    """A linear VAE trained on PPCA data reaches the maximum likelihood of the data: its mean
    ELBO on the training set comes within 0.02 nats of the mean log-likelihood of the
    closed-form maximum-likelihood PPCA (Tipping & Bishop 1999, eqs. 7–8), which bounds it
    from above. The tolerance is a budget for the optimiser (Adam, 3,000 steps) and the
    Monte Carlo ELBO evaluation (SE about 2e-3 with 50 draws on 2,000 points)."""
    n = 2000
    w = W_GENERAL
    z = jr.normal(jr.key(30), (n, K))
    x = np.asarray(z @ w.T + MU + SIGMA * jr.normal(jr.key(31), (n, D)))
    # Closed-form ML PPCA of the sample.
    mu = x.mean(0)
    s = np.cov(x.T, bias=True)
    lam, u = np.linalg.eigh(s)
    lam, u = lam[::-1], u[:, ::-1]
    s2 = lam[K:].mean()
    w_ml = u[:, :K] * np.sqrt(lam[:K] - s2)
    c = w_ml @ w_ml.T + s2 * np.eye(D)
    r = x - mu
    ll = -0.5 * (
        np.einsum("ni,ij,nj->n", r, np.linalg.inv(c), r)
        + np.linalg.slogdet(c)[1]
        + D * math.log(2 * math.pi)
    )
    enc = nn.GaussianEncoder(D, K, 8, 0, key=jr.key(32))
    dec = nn.GaussianDecoder(K, D, 8, 0, key=jr.key(33))
    (enc, dec), _ = train.fit_vae(
        enc, dec, jnp.asarray(x), jr.key(34), steps=3000, batch_size=256, lr=1e-2,
        progress=False, chunk=500,
    )  # fmt: skip
    bound = float(losses.elbo(enc, dec, x, jr.key(35), n_samples=50))
    assert ll.mean() - bound < 0.02, (ll.mean(), bound)
    assert bound < ll.mean() + 0.01


@pytest.mark.slow
def test_latent_diffusion_pipeline_end_to_end():
    """Encode → fit_score on the codes → reverse SDE → decode: the latent model is the
    library's ordinary score model and sampler on an (N, d) cloud. After a short fit on codes
    from a 2-component mixture, the decoded samples land near the two decoded modes."""
    from gpm_sde import samplers

    means = jnp.array([[2.0, 0.0], [-2.0, 0.0]])
    codes = means[jr.bernoulli(jr.key(40), 0.5, (1024,)).astype(int)]
    codes = codes + 0.2 * jr.normal(jr.key(41), codes.shape)
    dec = nn.GaussianDecoder(2, (1, 2, 2), 16, 1, key=jr.key(42))
    process = gpm_sde.vp()
    model = nn.EpsilonParam(nn.ScoreMLP(2, 64, 2, 16, key=jr.key(43)), process.sigma)
    model, _ = train.fit_score(
        model, process, codes, jr.key(44), steps=1500, batch_size=256, lr=3e-3,
        progress=False, chunk=500,
    )  # fmt: skip
    out = samplers.reverse_sde_sample(process, model, jr.key(45), 512, (2,), steps=200, eps=1e-3)
    x = nn.decode_latents(dec, out.x)
    assert x.shape == (512, 1, 2, 2)
    # Nearest decoded mode of each decoded sample: both modes are hit, each about half the time.
    modes = nn.decode_latents(dec, means).reshape(2, -1)
    d = jnp.sum((x.reshape(512, 1, -1) - modes[None]) ** 2, -1)
    share = float(jnp.mean(jnp.argmin(d, 1)))
    assert 0.4 < share < 0.6, share  # binomial SE 0.022 at 512 samples
    z_err = jnp.min(jnp.sum((out.x[:, None] - means[None]) ** 2, -1), 1)
    assert float(jnp.median(z_err)) < 0.5
