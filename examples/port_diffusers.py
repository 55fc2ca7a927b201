"""Port: diffusers' `DDPMScheduler` and `DDIMScheduler` onto `gpm_sde`.

diffusers numbers the N training steps 0..N−1 (`alphas_cumprod[t]` is ᾱ of Ho et al.'s
step t + 1), calls the network as `unet(sample, timestep)` and runs `scheduler.timesteps` from
`set_timesteps(S)` (spacing "leading", "trailing" or "linspace"). The port is

    chain = gpm_sde.ddpm(n_steps=N, beta_1=beta_start, beta_N=beta_end)
    eps_model = gpm_sde.scores.from_eps_discrete(chain, net, index_base=0)  # or from_x0_/from_v_
    ts = gpm_sde.schedules.ddpm_timesteps(N, S, spacing)                    # scheduler.timesteps
    x = gpm_sde.samplers.ddim(chain, eps_model, key, x_init=x_T, ts=ts, eta=0.0).x
    x = gpm_sde.samplers.ddpm_ancestral(chain, eps_model, key, x_init=x_T, ts=ts,
                                        variance="fixed_small").x

The reference below transcribes the schedulers' arithmetic (with `clip_sample=False`,
`set_alpha_to_one=True`, no thresholding) in float64 jax.numpy and draws, at timestep t, the
noise our samplers draw there (`jax.random.fold_in(noise_key, t + 1)`), so stochastic runs are
compared on the same noise. The toy network is the exact prediction (ε, x₀ or v) of Gaussian
data N(m, diag(v)) at 0-based timestep k.

DDIM: diffusers' `DDIMScheduler.step` goes from t to t − N//S, which is the next timestep only
for "leading" spacing; `gpm_sde.samplers.ddim` goes to the next timestep of `ts` (DDIM's own
code, and diffusers' `DDPMScheduler`). The round-off comparison therefore uses "leading".

    python examples/port_diffusers.py
    python examples/port_diffusers.py --fast
"""

from __future__ import annotations

import argparse

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402

import gpm_sde  # noqa: E402

N_TRAIN, BETA_START, BETA_END = 1000, 1e-4, 0.02
M = jnp.array([1.0, -0.5])
V = jnp.array([0.3, 0.8])
TOL = 1e-10

# ---- transcription of diffusers' scheduler arithmetic (not its code) ------------------------
BETAS = jnp.linspace(BETA_START, BETA_END, N_TRAIN)
ALPHAS_CUMPROD = jnp.cumprod(1.0 - BETAS)  # index t = 0..N-1


def reference_timesteps(steps: int, spacing: str) -> np.ndarray:
    """`set_timesteps(steps)` with `timestep_spacing` = spacing (steps_offset = 0)."""
    if spacing == "linspace":
        return np.linspace(0, N_TRAIN - 1, steps).round()[::-1].copy().astype(np.int64)
    if spacing == "leading":
        ratio = N_TRAIN // steps
        return (np.arange(0, steps) * ratio).round()[::-1].copy().astype(np.int64)
    ratio = N_TRAIN / steps  # "trailing"
    return np.round(np.arange(N_TRAIN, 0, -ratio)).astype(np.int64) - 1


def toy_net(prediction: str):
    """The exact network output at 0-based timestep k for N(M, diag V) data, on a batch."""

    def net(x, k):
        ab = ALPHAS_CUMPROD[k]  # k: a scalar (diffusers) or one per point (B,)
        ab = ab[..., None] if ab.ndim else ab
        r = x - jnp.sqrt(ab) * M
        prec = 1.0 / (ab * V + 1.0 - ab)
        eps = jnp.sqrt(1.0 - ab) * prec * r
        x0 = M + jnp.sqrt(ab) * V * prec * r
        if prediction == "epsilon":
            return eps
        if prediction == "sample":
            return x0
        return jnp.sqrt(ab) * eps - jnp.sqrt(1.0 - ab) * x0  # "v_prediction"

    return net


def _predict(prediction, out, x, a):
    """(x̂0, ε̂) from the model output, as both schedulers' step 3."""
    b = 1.0 - a
    if prediction == "epsilon":
        return (x - jnp.sqrt(b) * out) / jnp.sqrt(a), out
    if prediction == "sample":
        return out, (x - jnp.sqrt(a) * out) / jnp.sqrt(b)
    return jnp.sqrt(a) * x - jnp.sqrt(b) * out, jnp.sqrt(a) * out + jnp.sqrt(b) * x


def reference_ddim(net, prediction, x, timesteps, eta, noise_key):
    """`DDIMScheduler.step` over `timesteps`: to t − N//S, ᾱ = 1 below 0."""
    step_ratio = N_TRAIN // len(timesteps)
    for t in timesteps:
        prev = t - step_ratio
        a = ALPHAS_CUMPROD[t]
        a_prev = ALPHAS_CUMPROD[prev] if prev >= 0 else jnp.asarray(1.0)
        x0, eps = _predict(prediction, net(x, t), x, a)
        variance = (1.0 - a_prev) / (1.0 - a) * (1.0 - a / a_prev)
        std = eta * jnp.sqrt(variance)
        x = jnp.sqrt(a_prev) * x0 + jnp.sqrt(1.0 - a_prev - std**2) * eps
        if eta > 0:
            x = x + std * jr.normal(jr.fold_in(noise_key, int(t) + 1), x.shape)
    return x


def reference_ddpm(net, prediction, x, timesteps, variance_type, noise_key):
    """`DDPMScheduler.step` over `timesteps`: to the next timestep (−1 after the last)."""
    for i, t in enumerate(timesteps):
        prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        a = ALPHAS_CUMPROD[t]
        a_prev = ALPHAS_CUMPROD[prev] if prev >= 0 else jnp.asarray(1.0)
        cur_alpha = a / a_prev
        cur_beta = 1.0 - cur_alpha
        x0, _ = _predict(prediction, net(x, t), x, a)
        c_x0 = jnp.sqrt(a_prev) * cur_beta / (1.0 - a)
        c_x = jnp.sqrt(cur_alpha) * (1.0 - a_prev) / (1.0 - a)
        x = c_x0 * x0 + c_x * x
        if t > 0:
            var = jnp.maximum((1.0 - a_prev) / (1.0 - a) * cur_beta, 1e-20)
            if variance_type == "fixed_large":
                var = cur_beta
            x = x + jnp.sqrt(var) * jr.normal(jr.fold_in(noise_key, int(t) + 1), x.shape)
    return x


# ---------------------------------------------------------------------------------------------

ADAPTERS = {
    "epsilon": gpm_sde.scores.from_eps_discrete,
    "sample": gpm_sde.scores.from_x0_discrete,
    "v_prediction": gpm_sde.scores.from_v_discrete,
}


def port_model(prediction: str):
    """The toy network through gpm_sde's 0-based discrete adapter (1-based `eps_model(n, x)`)."""
    chain = gpm_sde.ddpm(n_steps=N_TRAIN, beta_1=BETA_START, beta_N=BETA_END)
    net = gpm_sde.scores.from_batched(toy_net(prediction), "x,t", (2,), time_dtype=jnp.int32)
    return chain, ADAPTERS[prediction](chain, net, index_base=0)


def compare_timesteps(steps_list=(1, 10, 25, 50, 100)) -> int:
    """How many (spacing, S) pairs where `ddpm_timesteps` differs from `set_timesteps`."""
    bad = 0
    for spacing in ("linspace", "leading", "trailing"):
        for s in steps_list:
            ours = gpm_sde.schedules.ddpm_timesteps(N_TRAIN, s, spacing)
            bad += not np.array_equal(ours, reference_timesteps(s, spacing))
    return bad


def compare(n: int = 256, steps: int = 50, seed: int = 0) -> dict[str, float]:
    """Max |reference − port| per configuration, same start and the same noise."""
    key = jr.key(seed)
    x_T = jr.normal(jr.fold_in(key, 99), (n, 2))
    noise_key = jr.split(key)[1]  # the samplers' noise key: `jax.random.split(key)[1]`
    out = {}
    ts = gpm_sde.schedules.ddpm_timesteps(N_TRAIN, steps, "leading")
    for prediction in ADAPTERS:
        chain, eps_model = port_model(prediction)
        net = toy_net(prediction)
        for eta in (0.0, 1.0):
            ref = reference_ddim(net, prediction, x_T, ts, eta, noise_key)
            ours = gpm_sde.samplers.ddim(chain, eps_model, key, x_init=x_T, ts=ts, eta=eta).x
            out[f"DDIM {prediction} eta={eta:g} leading"] = float(jnp.max(jnp.abs(ref - ours)))
    chain, eps_model = port_model("epsilon")
    net = toy_net("epsilon")
    for spacing in ("leading", "linspace"):
        ts = gpm_sde.schedules.ddpm_timesteps(N_TRAIN, steps, spacing)
        for variance in ("fixed_small", "fixed_large"):
            ref = reference_ddpm(net, "epsilon", x_T, ts, variance, noise_key)
            ours = gpm_sde.samplers.ddpm_ancestral(
                chain, eps_model, key, x_init=x_T, ts=ts, variance=variance
            ).x
            out[f"DDPM epsilon {variance} {spacing}"] = float(jnp.max(jnp.abs(ref - ours)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="diffusers' DDPM/DDIM schedulers vs gpm_sde.")
    parser.add_argument("--fast", action="store_true", help="fewer points and steps")
    args = parser.parse_args()
    n, steps = (64, 20) if args.fast else (4096, 100)
    bad = compare_timesteps()
    print(f"ddpm_timesteps vs set_timesteps: {bad} mismatching (spacing, steps) pairs")
    diffs = compare(n=n, steps=steps)
    for name, d in diffs.items():
        print(f"  {name:40s} max |difference| = {d:.3e}")
    worst = max(diffs.values())
    ok = bad == 0 and worst <= TOL
    print(
        f"diffusers DDPM/DDIM (float64, {n} points, {steps} steps): max |difference| = "
        f"{worst:.3e} (tolerance {TOL:g}): {'agree' if ok else 'DISAGREE'}"
    )
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
