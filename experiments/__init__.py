"""The book wing: one experiment per claim of *Neural Networks Explained*, and their runner.

Each ``chNN_<claim>.py`` measures a claim with jaxnn's public API, draws it and asserts it
(``python -m experiments.ch03_linear_collapse --quick``); :mod:`experiments.harness` is what
they share, :mod:`experiments.style` their figure style, and :mod:`experiments.book` runs them
all into one offline page (``python -m experiments build --quick --out book``). The wing lives in
the source checkout, beside the package: ``pip install .`` does not carry it.
"""
