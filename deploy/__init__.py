"""Deployment tooling: layers, IAM policies, layer publishing (kept out of chalicelib: never deployed)."""
