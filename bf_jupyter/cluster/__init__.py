"""Cluster-side daemons (admission webhooks, device plugin). Never imports Jupyter."""
