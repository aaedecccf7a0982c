"""The Bitfusion client adapter (find, run, parse) and ``sim/``, the embedded pool behind ``bitfusion-sim``."""
