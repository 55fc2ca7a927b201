"""Exact moments of the Euler–Maruyama chain of a linear SDE: the time step's bias, unsampled."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gpm_sde import AbstractLinearProcess


def euler_moments(
    process: AbstractLinearProcess,
    mean: np.ndarray,
    cov: np.ndarray,
    t1: float,
    steps: int,
    save_times: Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and covariance at `save_times` (grid points) of Euler–Maruyama for
    $dx = f(t)x\,dt + g(t)\,dW$ on `steps` equal steps $h$ of $[0, t_1]$, from `mean`, `cov`:

    $$m_{n+1} = (1 + f_n h)\,m_n, \qquad C_{n+1} = (1 + f_n h)^2 C_n + g_n^2 h\, I .$$

    Compared with the exact marginal's moments, this is the scheme's weak bias, exactly.
    """
    h = t1 / steps
    grid = np.linspace(0.0, t1, steps + 1)
    f = np.asarray(process.drift_coeff(grid))
    g2 = np.asarray(process.diffusion_squared(grid))
    save_at = {round(t / h) for t in save_times}
    means, covs = [], []
    m, c = np.asarray(mean), np.asarray(cov)
    for i in range(steps + 1):
        if i in save_at:
            means.append(m)
            covs.append(c)
        m, c = (1 + f[i] * h) * m, (1 + f[i] * h) ** 2 * c + g2[i] * h * np.eye(len(m))
    return np.stack(means), np.stack(covs)
