"""The benchmark wing: jaxnn's train step timed beside PyTorch, Flax nnx and hand-written JAX.

:mod:`benchmarks.bench` is ``python -m benchmarks`` (``jaxnn bench`` runs it from a checkout);
``twins_jax``, ``twins_flax`` and ``twins_torch`` build the same networks in each framework;
``memory``, ``conv_cpu``, ``csv_load``, ``input_pipeline`` and ``train_step`` measure one thing
each (``python -m benchmarks.memory --quick``). The wing lives in the source checkout, beside the
package: ``pip install .`` does not carry it. Numbers live in the benchmarks' output and the
README, never in a test.
"""
