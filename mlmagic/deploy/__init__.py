"""Deployments: a registered model served from a container over HTTP."""
