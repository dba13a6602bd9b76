"""Runs: a training script executed in an environment, from snapshot to outputs."""
