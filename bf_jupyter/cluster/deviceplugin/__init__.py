"""Kubelet device plugin (v1beta1) advertising Bitfusion GPU capacity as ``bitfusion.io/gpu``."""
