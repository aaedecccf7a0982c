"""Kernel side: the ``%bitfusion`` magic, the live-curve widget and its Keras callback."""
