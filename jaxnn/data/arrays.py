"""``.npy`` and ``.npz`` files as checked arrays — Chapter 9: an array file is untrusted input.

Every array jaxnn reads from a user's file (``npz:PATH``, ``npy:DIR``, ``jaxnn predict --input
x.npy``) goes through here: it is loaded with ``allow_pickle=False`` (an object array or a
pickle is refused, never executed), a file that is no archive or a damaged archive gives one
line naming it, and each array's dtype is checked: features are booleans, integers or floats;
labels may also be strings. Complex, structured, datetime and object arrays are refused, and
floats must be finite and fit float32 (about +-3.4e38), the precision jaxnn trains in.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from jaxnn.errors import UserError

__all__ = ["FEATURE_KINDS", "LABEL_KINDS", "check_array", "check_values", "read_inputs",
           "read_npy", "read_npz"]  # fmt: skip

#: dtype kinds an array of features may have (bool, signed, unsigned, float).
FEATURE_KINDS = "biuf"
#: dtype kinds an array of labels may have: also unicode and byte strings.
LABEL_KINDS = "biufUS"
_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
_KIND_NAMES = {"c": "complex numbers", "V": "structured records", "M": "datetimes",
               "m": "time deltas", "O": "Python objects", "U": "strings", "S": "bytes"}  # fmt: skip
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _error(where: str, err: Exception) -> UserError:
    text = str(err)
    if "pickle" in text or "allow_pickle" in text:
        return UserError(
            f"{where}: holds Python objects (an object array or a pickle); expected arrays of "
            f"numbers (or string labels): jaxnn never unpickles a file"
        )
    return UserError(f"{where}: cannot read it as NumPy arrays ({type(err).__name__}: {text})")


def read_npz(path: Path, where: str, pick) -> dict[str, np.ndarray]:
    """The arrays ``pick(names in the archive)`` returns, read from the ``.npz`` at ``path``.

    Raises:
      UserError: for a file that is no ``.npz`` (a lone ``.npy`` included), a damaged archive,
        or an array of Python objects.
    """
    try:
        archive = np.load(path, allow_pickle=False)
    except _ERRORS as e:
        raise _error(where, e) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UserError(
            f"{where}: holds one array of shape {np.shape(archive)}, not an .npz archive; "
            f"expected named arrays, e.g. np.savez(path, x=x, y=y)"
        )
    with archive:
        names = pick(archive.files)
        arrays = {}
        for name in names:
            try:
                arrays[name] = archive[name]
            except _ERRORS as e:
                raise _error(f"{where} (array {name})", e) from None
        return arrays


def read_npy(file: Path, where: str, *, mmap: bool = True) -> np.ndarray:
    """One ``.npy`` array (memory-mapped when ``mmap``).

    Raises:
      UserError: for a file that is no ``.npy`` array, or one of Python objects.
    """
    try:
        array = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except _ERRORS as e:
        raise _error(where, e) from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise UserError(f"{where}: is an .npz archive; expected one .npy array")
    return array


def check_array(where: str, name: str, array: np.ndarray, kinds: str = FEATURE_KINDS) -> None:
    """Raise unless ``array``'s dtype kind is one of ``kinds`` (numbers, or labels)."""
    kind = array.dtype.kind
    if kind not in kinds:
        what = "numbers or string labels" if "U" in kinds else "numbers"
        got = _KIND_NAMES.get(kind, str(array.dtype))
        raise UserError(f"{where}: expected {name} to hold {what}, got {got} (dtype {array.dtype})")


def check_values(where: str, name: str, array: np.ndarray) -> None:
    """Raise unless every float of ``array`` is finite and within float32's range."""
    if array.dtype.kind != "f" or not array.size:
        return
    flat = np.asarray(array).reshape(len(array), -1) if array.ndim else array.reshape(1, 1)
    bad = ~np.isfinite(flat).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"{where}: expected finite numbers in {name}, got NaN or infinity in "
            f"{int(bad.sum())} example(s), the first at index {first}"
        )
    biggest = float(np.abs(flat).max())
    if biggest > _FLOAT32_MAX:
        raise UserError(
            f"{where}: {name} holds {biggest:.3g}, finite but beyond float32's range (about "
            f"+-3.4e38); expected numbers float32 holds: rescale the array"
        )


def read_inputs(path, input_shape) -> np.ndarray:
    """New inputs for prediction from an ``.npy`` array or an ``.npz`` (its ``x``, or its one
    array), checked against the run's example shape.

    Chapter 5: the inputs a model sees at inference have the training inputs' shape.

    Returns:
      float32 (N, *input_shape).

    Raises:
      UserError: ``expected an array of shape (N, ...), got ...`` for a 0-d or wrong-shaped
        array, a non-numeric dtype, NaN or infinity, or an unreadable file.
    """
    path = Path(path)
    where = str(path)
    if path.suffix.lower() == ".npz":
        found = read_npz(path, where, lambda names: ["x"] if "x" in names else _one(where, names))
        x = next(iter(found.values()))
    else:
        x = np.asarray(read_npy(path, where, mmap=False))
    want = tuple(int(d) for d in input_shape)
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want or len(x) == 0:
        shape = ", ".join(["N", *map(str, want)])
        hint = " (one example: add a leading axis, x[None])" if tuple(x.shape) == want else ""
        raise UserError(
            f"{where}: expected an array of shape ({shape}) with N >= 1, got shape "
            f"{tuple(x.shape)}{hint}"
        )
    check_array(where, "the inputs", x)
    check_values(where, "the inputs", x)
    return x.astype(np.float32)


def _one(where: str, names: list[str]) -> list[str]:
    if len(names) != 1:
        raise UserError(f"{where}: expected an array named x (or just one array), got {names}")
    return names
