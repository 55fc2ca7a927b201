"""Exact likelihoods along deterministic flows: the probability-flow ODE and any flow in
generation time."""

from ._log_likelihood import (
    bits_per_dim as bits_per_dim,
    flow_log_likelihood as flow_log_likelihood,
    log_likelihood as log_likelihood,
)
