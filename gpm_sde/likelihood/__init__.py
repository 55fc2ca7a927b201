"""Exact likelihoods along the probability-flow ODE."""

from .log_likelihood import bits_per_dim as bits_per_dim, log_likelihood as log_likelihood
