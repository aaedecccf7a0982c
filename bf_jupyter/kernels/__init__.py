"""Kernel provisioners (Kubernetes, local), the kernel pod builder and the in-pod launcher."""
