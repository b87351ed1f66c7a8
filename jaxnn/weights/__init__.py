"""Weights that travel — Chapter 15: a saved model state, readable by other frameworks.

- :mod:`jaxnn.weights.store`: any params pytree as a safetensors file, with stable names (the
  keys of the path joined by "."), dtypes kept, and the model's name and config in the header;
  :func:`load` refuses a file that does not match its target, naming the first mismatch.
- :mod:`jaxnn.weights.torch_layout`: the built-in models' params and state as the state dict of
  their PyTorch twins, and back (pure NumPy).
- :mod:`jaxnn.weights.flax_layout`: the layers both libraries have, as ``flax.linen`` variables
  and ``flax.nnx`` state, and back (pure dicts).

Nothing here imports PyTorch or Flax.
"""

from jaxnn.weights.flax_layout import LAYERS, from_linen, from_nnx, to_linen, to_nnx
from jaxnn.weights.store import (
    FORMAT_VERSION,
    LoadedModel,
    first_mismatch,
    flatten,
    load,
    load_model,
    model_metadata,
    read,
    save,
    save_model,
    save_tensors,
    specs,
)
from jaxnn.weights.torch_layout import LAYOUTS, Entry, from_torch, to_torch, torch_names

__all__ = ["FORMAT_VERSION", "LoadedModel", "first_mismatch", "flatten", "load", "load_model"]
__all__ += ["model_metadata", "read", "save", "save_model", "save_tensors", "specs"]
__all__ += ["LAYOUTS", "Entry", "torch_names", "to_torch", "from_torch"]
__all__ += ["LAYERS", "to_linen", "from_linen", "to_nnx", "from_nnx"]
