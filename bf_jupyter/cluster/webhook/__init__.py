"""Mutating and validating admission webhooks for Bitfusion GPU pods."""
