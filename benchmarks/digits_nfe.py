r"""Digits-FD per network evaluation (NFE) of the few-step samplers with the trained digits
score model, against 1000 steps of Euler–Maruyama of the reverse SDE.

    python benchmarks/digits_nfe.py                       # full settings (1,500 DSM steps)
    python benchmarks/digits_nfe.py --fast                # tiny settings (a smoke test)
    python benchmarks/digits_nfe.py --score-steps 800 --nfe 5 10 20 50 100

The model is `benchmarks/digits.py`'s score model (a VP ε-model U-Net trained by DSM, same
key as there for `--seed`), trained once and cached with `eqx.tree_serialise_leaves` under
`--cache` (default `/tmp`), so that reruns skip the training. Each sampler generates as many
images as the training split (1,438) from the same key; its digits-FD to the test split is
compared with the 1000-step Euler–Maruyama reference (`samplers.reverse_sde_sample` to
$t = \epsilon$, then one Tweedie step, as in `benchmarks/digits.py`). "NFE needed" is the
smallest NFE on the grid whose digits-FD is within 10% of the reference
($\mathrm{FD} \le 1.1\,\mathrm{FD}_\mathrm{EM}$); each sampler's larger budgets are not
sampled once it is reached (`--whole-grid` samples them all). `--n N` generates `N` images
per sampler instead (the train-versus-test reference then uses `N` random training images).
Every digits-FD is stored under `--cache` as it is measured, so the work can be shared by
processes run at the same time, `--em-only` (the reference) and `--no-em --sampler NAME ...`
(the few-step samplers at every budget), after which a plain run collects the table. Writes
`digits_nfe.json` and `digits_nfe.md` under `--out` (default `reports/results`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from _common import write_report  # benchmarks/_common.py
from digits import EPS, score_model_init, train_score_model  # benchmarks/digits.py

import gpm_sde
from gpm_sde import data, metrics, samplers

# name -> (sampler, options, evaluations per step), as in benchmarks/quality_per_nfe.py
# (not imported from there: that script switches on float64 at import).
SAMPLERS: dict[str, tuple[Any, dict[str, Any], int]] = {
    "EDM Heun": (samplers.edm_heun, {}, 2),
    "EDM stochastic (S_churn=10)": (samplers.edm_stochastic, {"s_churn": 10.0}, 2),
    "DPM-Solver++(2M)": (samplers.dpm_solver_pp_2m, {}, 1),
    "DPM-Solver++(2S)": (samplers.dpm_solver_pp_2s, {}, 2),
    "DDIM (euler_ancestral eta=0)": (samplers.euler_ancestral, {"eta": 0.0}, 1),
    "Euler ancestral (eta=1)": (samplers.euler_ancestral, {"eta": 1.0}, 1),
}


def steps_for(nfe: int, per_step: int) -> int:
    """The most steps whose NFE ($2N - 1$ or $N$) is within `nfe`."""
    return max(1, (nfe + 1) // 2) if per_step == 2 else nfe


def trained_model(key: jax.Array, steps: int, train_x: jax.Array, cache: Path, seed: int):
    path = cache / f"gpm_sde_digits_score_seed{seed}_steps{steps}.eqx"
    if path.exists():
        print(f"loading the trained model from {path}", flush=True)
        return eqx.tree_deserialise_leaves(path, score_model_init(key)), 0.0
    start = time.perf_counter()
    model = train_score_model(key, steps, train_x)
    seconds = time.perf_counter() - start
    cache.mkdir(parents=True, exist_ok=True)
    eqx.tree_serialise_leaves(path, model)
    print(f"trained {steps} DSM steps in {seconds:.0f}s, saved to {path}", flush=True)
    return model, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score-steps", type=int, default=None, help="DSM steps (1500)")
    parser.add_argument("--em-steps", type=int, default=None, help="reference steps (1000)")
    parser.add_argument("--nfe", type=int, nargs="+", default=None)
    parser.add_argument("--sampler", action="append", choices=sorted(SAMPLERS))
    parser.add_argument(
        "--whole-grid", action="store_true", help="sample every NFE, also after reaching"
    )
    parser.add_argument("--n", type=int, default=None, help="images per sampler (1438)")
    parser.add_argument("--em-only", action="store_true", help="only the reference")
    parser.add_argument("--no-em", action="store_true", help="only the few-step samplers")
    parser.add_argument(
        "--model-file",
        type=Path,
        default=None,
        help="a trained score_model_init model (eqx.tree_serialise_leaves) instead of training",
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp"))
    parser.add_argument("--out", type=Path, default=Path("reports/results"))
    args = parser.parse_args(argv)
    score_steps = args.score_steps or (100 if args.fast else 1500)
    em_steps = args.em_steps or (50 if args.fast else 1000)
    grid = sorted(args.nfe or ((5, 10) if args.fast else (5, 10, 20, 50, 100)))

    train_x, _ = data.digits("train")
    test_x, _ = data.digits("test")
    n = args.n or train_x.shape[0]
    # The data's own digits-FD at the same sample size (a random subset of the train split).
    subset = jr.permutation(jr.key(args.seed + 1), train_x.shape[0])[:n]
    reference = float(metrics.digits_fd(train_x[subset], test_x))
    # The score model's key in benchmarks/digits.py: fold_in(key(seed), index 0).
    key = jr.fold_in(jr.key(args.seed), 0)
    if args.model_file is not None:
        model = eqx.tree_deserialise_leaves(args.model_file, score_model_init(key))
        train_seconds, tag = 0.0, args.model_file.stem
    else:
        model, train_seconds = trained_model(key, score_steps, train_x, args.cache, args.seed)
        tag = f"seed{args.seed}_steps{score_steps}"
    process = gpm_sde.vp()
    sample_key = jr.fold_in(key, 2)
    # Each digits-FD is stored as one file, so that several processes (`--em-only`,
    # `--no-em` with disjoint `--sampler`s) can share the work and a last plain run only
    # collects the results.
    store = args.cache / f"gpm_sde_digits_nfe_{tag}_n{n}"
    store.mkdir(parents=True, exist_ok=True)

    def measured(name: str, run: Any) -> tuple[float, float]:
        """(digits-FD, sampling seconds) of `run()`, from the store if measured before."""
        path = store / ("".join(c if c.isalnum() else "_" for c in name) + ".json")
        if path.exists():
            cached = json.loads(path.read_text())
            return cached["fd"], cached["seconds"]
        start = time.perf_counter()
        x = jnp.clip(jax.block_until_ready(run()), -1.0, 1.0)
        seconds = time.perf_counter() - start
        finite = bool(jnp.all(jnp.isfinite(x)))
        value = float(metrics.digits_fd(x, test_x)) if finite else float("nan")
        path.write_text(json.dumps({"fd": value, "seconds": seconds}))
        return value, seconds

    def em() -> jax.Array:
        out = samplers.reverse_sde_sample(
            process, model, sample_key, n, (1, 8, 8), steps=em_steps, eps=EPS
        )
        return samplers.tweedie_denoise(process, model, EPS, out.x)

    def few_step(name: str, budget: int) -> tuple[int, float, float]:
        sampler, options, per_step = SAMPLERS[name]
        steps = steps_for(budget, per_step)
        nfe = 2 * steps - 1 if per_step == 2 else steps

        def run() -> jax.Array:
            return sampler(process, model, sample_key, n, (1, 8, 8), steps=steps, **options).x

        value, seconds = measured(f"{name} {steps} steps", run)
        print(f"  {name:30s} NFE {nfe:4d}  digits-FD {value:.2f} ({seconds:.0f}s)", flush=True)
        return nfe, value, seconds

    names = args.sampler or list(SAMPLERS)
    if args.no_em:  # the few-step samplers only, every budget, the smallest budgets first
        for budget in grid:
            for name in names:
                few_step(name, budget)
        return 0
    em_fd, em_seconds = measured(f"Euler-Maruyama {em_steps} steps", em)
    print(
        f"train-vs-test digits-FD {reference:.2f}; Euler–Maruyama {em_steps} steps: "
        f"digits-FD {em_fd:.2f} ({em_seconds:.0f}s)",
        flush=True,
    )
    if args.em_only:
        return 0
    rows = []
    for name in names:
        curve: dict[int, float] = {}
        seconds = 0.0
        for budget in grid:
            nfe, curve[nfe], took = few_step(name, budget)
            seconds += took
            if curve[nfe] <= 1.1 * em_fd and not args.whole_grid:
                break  # reached: the larger budgets are not sampled (CPU time)
        needed = next((k for k, v in sorted(curve.items()) if v <= 1.1 * em_fd), None)
        rows.append({"sampler": name, "curve": curve, "needed": needed, "seconds": seconds})
    summary = {
        "reference_fd": reference,
        "em_steps": em_steps,
        "em_fd": em_fd,
        "em_seconds": em_seconds,
        "score_steps": score_steps,
        "train_seconds": train_seconds,
        "n": n,
        "rows": rows,
    }
    nfes = sorted({k for r in rows for k in r["curve"]})
    lines = [
        f"Train-versus-test digits-FD {reference:.2f}; Euler–Maruyama {em_steps} steps "
        f"(+ Tweedie): digits-FD {em_fd:.2f}; threshold (+10%) {1.1 * em_fd:.2f}",
        "",
        "| sampler | NFE needed | " + " | ".join(f"NFE {k}" for k in nfes) + " | sampling (s) |",
        "|---|---|" + "---|" * len(nfes) + "---|",
    ]
    for r in rows:
        cells = " | ".join(f"{r['curve'][k]:.2f}" if k in r["curve"] else "–" for k in nfes)
        needed = r["needed"] if r["needed"] is not None else f"> {max(r['curve'])}"
        lines.append(f"| {r['sampler']} | {needed} | {cells} | {r['seconds']:.0f} |")
    print("\n".join(lines), flush=True)
    write_report(args.out, "digits_nfe", summary, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
