"""jaxnn: a functional JAX reference implementation of *Neural Networks Explained*.

Pure functions for activations, losses, layers and models (params are plain dict pytrees), optax
optimizers with readable twins, a training loop with checkpoints and exact resume, offline data
pipelines, and finite-difference gradient checks.
"""

__version__ = "0.1.0"
