"""Time grids (`gpm_sde.schedules`) against the reference codebases, and `simulate(ts=...)`.

The references are transcribed here independently of the library, from the code they come
from (no torch or diffusers dependency):
- k-diffusion, `k_diffusion/sampling.py::get_sigmas_karras` (Karras et al. 2022, eq. 5);
- diffusers, `DDIMScheduler.set_timesteps` / `DDPMScheduler.set_timesteps`
  (`timestep_spacing` "linspace", "leading", "trailing"; `steps_offset`);
- ermongroup/ddim, `runners/diffusion.py::sample_image` (`skip_type` "uniform", "quad").
A few literal arrays, worked out by hand from those formulas, pin the transcriptions too.
"""

from __future__ import annotations

import diffrax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gpm_sde
from gpm_sde.schedules import ddpm_timesteps, karras_sigmas, time_grid
from gpm_sde.solve._brownian import _PATH_TAG

# --- transcriptions of the references ----------------------------------------------------


def kdiffusion_get_sigmas_karras(n, sigma_min, sigma_max, rho=7.0):
    """`get_sigmas_karras` of k-diffusion, in float64 NumPy (theirs is torch float32)."""
    ramp = np.linspace(0, 1, n)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return np.concatenate([sigmas, np.zeros(1)])  # `append_zero`


def diffusers_set_timesteps(num_train_timesteps, num_inference_steps, spacing, steps_offset=0):
    """The `timestep_spacing` branch of diffusers' `set_timesteps` (DDIM and DDPM)."""
    if spacing == "linspace":
        return (
            np.linspace(0, num_train_timesteps - 1, num_inference_steps)
            .round()[::-1]
            .copy()
            .astype(np.int64)
        )
    if spacing == "leading":
        step_ratio = num_train_timesteps // num_inference_steps
        timesteps = (np.arange(0, num_inference_steps) * step_ratio).round()[::-1].copy()
        return timesteps.astype(np.int64) + steps_offset
    step_ratio = num_train_timesteps / num_inference_steps
    timesteps = np.round(np.arange(num_train_timesteps, 0, -step_ratio)).astype(np.int64)
    return timesteps - 1


def ddim_code_seq(num_timesteps, timesteps, skip_type):
    """`seq` of ermongroup/ddim's `sample_image`, in the order run (`reversed(seq)`)."""
    if skip_type == "uniform":
        skip = num_timesteps // timesteps
        seq = range(0, num_timesteps, skip)
    else:
        seq = np.linspace(0, np.sqrt(num_timesteps * 0.8), timesteps) ** 2
        seq = [int(s) for s in list(seq)]
    return np.asarray(list(reversed(list(seq))), dtype=np.int64)


# --- Karras sigmas -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "sigma_min", "sigma_max", "rho"),
    [(10, 0.002, 80.0, 7.0), (40, 0.01, 50.0, 7.0), (7, 0.1, 1.0, 3.0), (2, 0.5, 2.0, 1.0)],
)
def test_karras_sigmas_equal_k_diffusion(n, sigma_min, sigma_max, rho):
    want = kdiffusion_get_sigmas_karras(n, sigma_min, sigma_max, rho)
    got = np.asarray(karras_sigmas(n, sigma_min, sigma_max, rho, append_zero=True))
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
    assert got[-1] == 0.0 and got.shape == (n + 1,)
    plain = np.asarray(karras_sigmas(n, sigma_min, sigma_max, rho))
    np.testing.assert_array_equal(plain, got[:-1])
    assert plain[0] == pytest.approx(sigma_max, rel=1e-14)
    assert plain[-1] == pytest.approx(sigma_min, rel=1e-14)
    assert np.all(np.diff(plain) < 0)


def test_karras_sigmas_literal():
    """n = 3 on EDM's (0.002, 80): the middle level is ((80^{1/7} + 0.002^{1/7})/2)^7."""
    got = np.asarray(karras_sigmas(3, 0.002, 80.0))
    np.testing.assert_allclose(got, [80.0, 2.515218976147159, 0.002], rtol=1e-14)
    assert karras_sigmas(1, 0.002, 80.0).shape == (1,)


# --- integer timesteps ---------------------------------------------------------------------


def test_ddpm_timesteps_literals():
    """N = 1000, S = 10, worked out by hand from each reference formula."""
    lin = [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    lead = [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    trail = [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    quad = [800, 632, 483, 355, 246, 158, 88, 39, 9, 0]  # ⌊i² · 800/81⌋
    assert ddpm_timesteps(1000, 10, "linspace").tolist() == lin
    assert ddpm_timesteps(1000, 10, "leading").tolist() == lead
    assert ddpm_timesteps(1000, 10, "leading", steps_offset=1).tolist() == [t + 1 for t in lead]
    assert ddpm_timesteps(1000, 10, "trailing").tolist() == trail
    assert ddpm_timesteps(1000, 10, "uniform").tolist() == lead
    assert ddpm_timesteps(1000, 10, "quad").tolist() == quad
    assert ddpm_timesteps(1000, 10, "quad").dtype == np.int64


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
@pytest.mark.parametrize(("n_train", "steps"), [(1000, 50), (1000, 3), (1000, 7), (100, 100)])
def test_ddpm_timesteps_equal_diffusers(spacing, n_train, steps):
    got = ddpm_timesteps(n_train, steps, spacing)
    np.testing.assert_array_equal(got, diffusers_set_timesteps(n_train, steps, spacing))
    if spacing == "leading":
        want = diffusers_set_timesteps(n_train, steps, spacing, steps_offset=1)
        if want.max() <= n_train - 1:  # else a timestep out of the chain: an error here
            got = ddpm_timesteps(n_train, steps, spacing, steps_offset=1)
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("skip_type", ["uniform", "quad"])
@pytest.mark.parametrize(("n_train", "steps"), [(1000, 10), (1000, 29), (1000, 30), (50, 6)])
def test_ddpm_timesteps_equal_ddim_code(skip_type, n_train, steps):
    """Element for element (S = 30 of 1000 is "uniform" with S ∤ N: 31 timesteps)."""
    got = ddpm_timesteps(n_train, steps, skip_type)
    want = ddim_code_seq(n_train, steps, skip_type)
    if skip_type == "quad":  # its repeated values (S - 1 > sqrt(0.8 N)) are kept once
        want = np.unique(want)[::-1]
    np.testing.assert_array_equal(got, want)


def test_ddpm_timesteps_clean_ups():
    """Where the references' arithmetic misfires: diffusers' 'trailing' yields an extra −1 for
    S = 61 of 1000 (dropped), DDIM's 'quad' repeats timesteps for large S (kept once)."""
    ref = diffusers_set_timesteps(1000, 61, "trailing")
    assert ref.shape == (62,) and ref[-1] == -1
    np.testing.assert_array_equal(ddpm_timesteps(1000, 61, "trailing"), ref[:-1])
    ref = ddim_code_seq(1000, 100, "quad")
    assert len(np.unique(ref)) < len(ref)
    np.testing.assert_array_equal(ddpm_timesteps(1000, 100, "quad"), np.unique(ref)[::-1])
    for steps in range(1, 1001):
        t = ddpm_timesteps(1000, steps, "trailing")
        assert t.shape == (steps,) and t.min() >= 0 and np.all(np.diff(t) < 0)


def test_ddpm_timesteps_errors():
    with pytest.raises(ValueError, match="at most"):
        ddpm_timesteps(10, 11, "linspace")
    with pytest.raises(ValueError, match="spacing"):
        ddpm_timesteps(10, 5, "cosine")
    with pytest.raises(ValueError, match="steps_offset"):
        ddpm_timesteps(10, 5, "trailing", steps_offset=1)
    with pytest.raises(ValueError, match="outside"):
        ddpm_timesteps(10, 10, "leading", steps_offset=1)


# --- continuous grids ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vp", "ve", "subvp", "edm", "cosine"])
def test_time_grid_spacings(name):
    process = getattr(gpm_sde, name)()
    T, eps, steps = process.T, 2e-3, 12
    uniform = time_grid(process, steps, eps=eps)
    assert jnp.array_equal(uniform, jnp.linspace(0.0, T - eps, steps + 1))
    u = np.linspace(0.0, 1.0, steps + 1)
    quad = np.asarray(time_grid(process, steps, "quadratic", eps=eps))
    np.testing.assert_allclose(T - quad, eps + (T - eps) * (1 - u) ** 2, rtol=0, atol=1e-14 * T)
    s = np.asarray(time_grid(process, steps, "karras", eps=eps, rho=7.0))
    assert s[0] == 0.0 and s[-1] == T - eps and np.all(np.diff(s) > 0)
    t = T - s
    ratio = np.asarray(process.sigma(t) / process.alpha(t))
    r_lo = float(process.sigma(eps) / process.alpha(eps))
    r_hi = float(process.sigma(T) / process.alpha(T))
    want = kdiffusion_get_sigmas_karras(steps + 1, r_lo, r_hi, 7.0)[:-1]
    np.testing.assert_allclose(ratio, want, rtol=1e-10)


def test_time_grid_karras_on_edm_is_sigma():
    """EDM has σ(t) = t, α = 1: the diffusion times are the Karras sigmas themselves."""
    process = gpm_sde.edm()
    s = np.asarray(time_grid(process, 8, "karras", eps=0.002))
    want = np.asarray(karras_sigmas(9, 0.002, process.T))
    np.testing.assert_allclose(process.T - s, want, rtol=1e-12, atol=1e-14 * process.T)


def test_time_grid_errors():
    with pytest.raises(ValueError, match="eps"):
        time_grid(gpm_sde.vp(), 4, eps=1.0)
    with pytest.raises(ValueError, match="spacing"):
        time_grid(gpm_sde.vp(), 4, "log")
    with pytest.raises(TypeError, match="process"):
        time_grid(gpm_sde.ddpm(), 4)  # pyright: ignore[reportArgumentType]


# --- simulate on an explicit grid -------------------------------------------------------------


@pytest.fixture(scope="module")
def reverse_vp():
    process = gpm_sde.vp()
    return process, gpm_sde.reverse(process, lambda t, x: -x)


def test_simulate_ts_equal_to_the_uniform_grid_is_bitwise_steps(reverse_vp):
    """`ts = jnp.linspace(t0, t1, steps + 1)` is the grid `steps` builds: the same solution,
    bit for bit, on the scan path and on diffeqsolve's `StepTo` path (off-grid save)."""
    _, sde = reverse_vp
    y0 = jr.normal(jr.key(0), (16, 2))
    t0, t1, steps = 0.1, 0.999, 20  # t0 > 0: linspace differs from t0 + n Δs in 6 points
    ts = jnp.linspace(t0, t1, steps + 1)
    for saveat in (None, diffrax.SaveAt(ts=jnp.array([0.3, t1]))):
        a = gpm_sde.simulate(sde, y0, jr.key(1), t0=t0, t1=t1, steps=steps, saveat=saveat)
        b = gpm_sde.simulate(sde, y0, jr.key(1), ts=ts, saveat=saveat)
        assert jnp.array_equal(a.ys, b.ys) and jnp.array_equal(a.ts, b.ts)  # pyright: ignore[reportArgumentType]


def test_simulate_on_a_nonuniform_grid_is_euler_maruyama_on_that_grid():
    """dx = a x ds + dW on a quadratic grid: x_{n+1} = x_n (1 + a Δs_n) + ΔW_n, with
    ΔW_n = sqrt(Δs_n) · normal(fold_in(fold_in(key, TAG), n)), written out by hand."""
    a = -0.7
    sde = gpm_sde.SDE(gpm_sde.LinearDrift(a), gpm_sde.ScalarDiffusion(1.0))
    ts = 0.2 + 1.3 * np.linspace(0.0, 1.0, 9) ** 2
    y0 = jr.normal(jr.key(0), (5, 3))
    key = jr.key(4)
    sol = gpm_sde.simulate(
        sde, y0, key, ts=jnp.asarray(ts), saveat=diffrax.SaveAt(ts=jnp.asarray(ts[[3, 8]]))
    )
    stream = jr.fold_in(key, _PATH_TAG)
    x, kept = y0, []
    for n in range(8):
        ds = ts[n + 1] - ts[n]
        x = x * (1 + a * ds) + np.sqrt(ds) * jr.normal(jr.fold_in(stream, n), y0.shape)
        if n + 1 in (3, 8):
            kept.append(x)
    assert sol.ts is not None and sol.ys is not None
    np.testing.assert_array_equal(np.asarray(sol.ts), ts[[3, 8]])
    np.testing.assert_allclose(np.asarray(sol.ys), np.stack(kept), rtol=1e-13, atol=1e-13)


def test_simulate_grid_arguments(reverse_vp):
    _, sde = reverse_vp
    y0 = jnp.zeros((4, 2))
    with pytest.raises(TypeError, match="exactly one"):
        gpm_sde.simulate(sde, y0, jr.key(0), t1=1.0, steps=3, ts=jnp.linspace(0, 1, 4))
    with pytest.raises(TypeError, match="exactly one"):
        gpm_sde.simulate(sde, y0, jr.key(0), t1=1.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        gpm_sde.simulate(sde, y0, jr.key(0), ts=jnp.array([0.0, 0.5, 0.5, 1.0]))
    with pytest.raises(ValueError, match="disagrees"):
        gpm_sde.simulate(sde, y0, jr.key(0), ts=jnp.linspace(0, 0.9, 4), t1=1.0)
    with pytest.raises(ValueError, match="stepsize_controller"):
        gpm_sde.simulate(
            sde,
            y0,
            jr.key(0),
            ts=jnp.linspace(0, 0.9, 4),
            stepsize_controller=diffrax.PIDController(rtol=1e-3, atol=1e-3),
        )
    sol = gpm_sde.simulate(sde, y0, jr.key(0), ts=jnp.linspace(0.1, 0.9, 4), t0=0.1, t1=0.9)
    assert sol.ys is not None and sol.ys.shape == (1, 4, 2)
