"""Analyses on trained runs: activation policies, noise robustness, plots."""
