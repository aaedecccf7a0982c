"""The jupyter-server extension: REST API for the pool, quota and GPU kernels."""
