"""Every data source in one table, and :func:`load` — Chapter 9: data pipelines start here.

:data:`SOURCES` lists each kind of data :func:`load` knows, with the options it takes and their
defaults; :data:`NAMES` is their names. :func:`load` takes one path for all of them: find the
entry, check every option (:func:`jaxnn.data.options.check_options`) before any data is read,
then call the entry's loader, which carves its splits with :func:`jaxnn.data.splits.split`.

- Built-in datasets (:mod:`jaxnn.data.builtin`): ``mnist1d``, ``digits``, ``mnist5k``,
  ``pydoc_text``, ``synthetic:moons``, ``synthetic:spirals``, ``synthetic:xor``,
  ``synthetic:sine``.
- ``tfds:<name>``: any TensorFlow Datasets dataset that is already prepared
  (:mod:`jaxnn.data.tfds`).
- A user's files (:mod:`jaxnn.data.sources`): ``csv:PATH``, ``npz:PATH``, ``npy:DIR``,
  ``pack:DIR`` (:mod:`jaxnn.data.streaming`, larger than memory), ``text:PATH``,
  ``images:DIR`` (or ``folder:DIR``); a bare ``my.csv``, ``my.npz``, ``book.txt``
  or a folder works too.

Every dataset loads offline and deterministically: the same name, ``seed`` and options give the
same bytes, and the global NumPy and Python random states are left untouched.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Callable, Mapping

from jaxnn.data import builtin, sources, streaming
from jaxnn.data.builtin import pydoc_corpus
from jaxnn.data.containers import TASKS, Dataset, DatasetInfo, SealedDataset, Splits
from jaxnn.data.options import check_options, fractions_below_one
from jaxnn.data.splits import check_seed, split_indices
from jaxnn.data.tfds import load_tfds
from jaxnn.errors import UserError

__all__ = [
    "NAMES",
    "SOURCES",
    "TASKS",
    "Dataset",
    "DatasetInfo",
    "SealedDataset",
    "Source",
    "Splits",
    "load",
    "load_source",
    "pydoc_corpus",
    "split_indices",
]


@dataclasses.dataclass(frozen=True)
class Source:
    """One kind of data source: its name, its loader, the options it takes with their defaults.

    Attributes:
      name: as listed in :data:`NAMES`: a dataset (``"digits"``) or a prefix and what follows it
        (``"csv:PATH"``, ``"tfds:<name>"``).
      loader: ``loader(*, seed, **options)`` for a dataset, ``loader(rest, *, seed, **options)``
        for a prefix (``rest`` is what follows it); returns :class:`Splits`.
      options: every option the loader takes, with its default.
      checks: rules that tie options together, ``check(where, values)``, run after each value
        has passed its own rule.
      argument: for a prefix, what must follow it (``"a path"``); None for a dataset.
    """

    name: str
    loader: Callable[..., Splits]
    options: Mapping[str, object]
    checks: tuple[Callable[[str, Mapping], None], ...] = ()
    argument: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "options", types.MappingProxyType(dict(self.options)))

    @property
    def prefix(self) -> str | None:
        """``"csv:"`` for ``"csv:PATH"``; None for a dataset name."""
        return None if self.argument is None else self.name.partition(":")[0] + ":"


_SPLIT = {"val_fraction": 0.1, "test_fraction": 0.2}
_FILE = (fractions_below_one,)

SOURCES: tuple[Source, ...] = (
    Source("mnist1d", builtin.load_mnist1d, {"val_fraction": 0.1, "disk_cache": True}),
    Source("digits", builtin.load_digits, _SPLIT),
    Source("mnist5k", builtin.load_mnist5k, _SPLIT),
    Source("pydoc_text", builtin.load_pydoc_text, sources.TEXT_OPTIONS, sources.TEXT_CHECKS),
    Source("synthetic:moons", builtin.load_moons, {"n": 1000, "noise": 0.1, **_SPLIT}),
    Source(
        "synthetic:spirals", builtin.load_spirals, {"n": 1000, "noise": 0.02, "arms": 2, **_SPLIT}
    ),
    Source("synthetic:xor", builtin.load_xor, {"n": 1000, "noise": 0.0, **_SPLIT}),
    Source("synthetic:sine", builtin.load_sine, {"n": 1000, "noise": 0.1, **_SPLIT}),
    Source(
        "tfds:<name>",
        load_tfds,
        {
            "val_fraction": 0.1,
            "data_dir": None,
            "download": False,
            "train_split": "train",
            "test_split": "test",
            "val_split": None,
            "max_examples": None,
            "stream": False,
        },
        argument="a TFDS dataset name",
    ),
    Source(
        "csv:PATH",
        sources.load_csv,
        {"target": None, "task": None, "delimiter": ",", "missing": "error", **_SPLIT},
        _FILE,
        argument="a path",
    ),
    Source(
        "npz:PATH",
        sources.load_npz,
        {"task": None, "modality": None, **_SPLIT},
        _FILE,
        argument="a path",
    ),
    Source(
        "npy:DIR",
        sources.load_npy,
        {"task": None, "modality": None, **_SPLIT},
        _FILE,
        argument="a path",
    ),
    Source(
        "pack:DIR",
        streaming.load_pack,
        {"val_fraction": 0.1, "test_fraction": 0.2},
        _FILE,
        argument="a path",
    ),
    Source(
        "text:PATH",
        sources.load_text,
        sources.TEXT_OPTIONS,
        sources.TEXT_CHECKS,
        argument="a path",
    ),
    Source(
        "images:DIR",
        sources.load_images,
        {"size": None, "mode": None, **_SPLIT},
        _FILE,
        argument="a path",
    ),
)

NAMES: tuple[str, ...] = tuple(s.name for s in SOURCES)

_DATASETS = {s.name: s for s in SOURCES if s.prefix is None}
_PREFIXES = {s.prefix: s for s in SOURCES if s.prefix is not None}


def _find(spec: str) -> tuple[Source, Callable[..., Splits]]:
    """The table's entry for ``spec`` and its loader, bound to what follows a prefix."""
    if spec in _DATASETS:
        return _DATASETS[spec], _DATASETS[spec].loader
    kind, sep, rest = spec.partition(":")
    source = _PREFIXES.get(sources.ALIASES.get(kind, kind) + sep)
    if source is None:
        raise ValueError(f"load: unknown dataset {spec!r}; expected one of {', '.join(NAMES)}")
    if not rest:
        raise UserError(f"load({spec!r}): expected {source.argument} after '{kind}:', got nothing")
    return source, functools.partial(source.loader, rest)


def load(name: str, *, seed: int = 0, **options) -> Splits:
    """Load dataset ``name`` as train/validation/test :class:`Splits`, offline and deterministic.

    Chapter 9: the pipeline starts by splitting the data; the validation set is carved from the
    training data (stratified for classification, 10% by default) and the test set stays sealed.
    Same ``name``, ``seed`` and ``options`` give the same bytes; global random states are not
    touched. Datasets without an official test split hold out a test set with a fixed seed, so
    ``seed`` moves only the validation split (synthetic data is generated from ``seed`` itself).

    Args:
      name: one of :data:`NAMES`: a built-in name, ``"tfds:<name>"`` for a prepared TensorFlow
        Datasets set, or a user's file source such as ``"csv:PATH"`` (or a bare path).
      seed: non-negative integer seed of the validation split (and of synthetic data).
      **options: the options of the source (:data:`SOURCES` lists them with their defaults),
        e.g. ``val_fraction`` (all), ``test_fraction``, ``seq_len``, ``stride``, ``tokenizer``
        ("char" | "bpe") and ``vocab_size`` (text), ``n`` and ``noise`` (synthetic),
        ``disk_cache`` (mnist1d, under ``$JAXNN_CACHE_DIR`` or ``~/.cache/jaxnn``),
        ``data_dir`` and ``download`` (tfds), ``target``, ``task`` and ``delimiter`` (csv).

    Returns:
      :class:`Splits` with ``train``, ``val``, a sealed ``test`` and ``info``.

    Raises:
      ValueError: for an unknown name (the message lists :data:`NAMES`), an unknown option (the
        message lists the valid ones), an option value of the wrong type or range
        (``n="abc"``, ``val_fraction=1.5``; a :class:`~jaxnn.errors.UserError`), a bad seed,
        a missing or malformed file, or data too small to split.
    """
    if not isinstance(name, str):
        raise ValueError(f"load: expected a dataset name string, got {type(name).__name__}")
    check_seed(seed)
    spec = sources.resolve_spec(name)
    source, loader = _find(spec)
    values = check_options(f"load({spec!r})", source.options, options, source.checks)
    return loader(seed=seed, **values)


def load_source(spec: str, *, seed: int = 0, **options) -> Splits | None:
    """:func:`load` for a user's file source, or None for any other name.

    Chapter 9: the same splits as :func:`load` gives; a bare path (``my.csv``) is not resolved.

    Args:
      spec: ``csv:PATH``, ``npz:PATH``, ``npy:DIR``, ``text:PATH`` or ``images:DIR``.
      seed: non-negative seed of the validation split.
      **options: the options of that kind (:data:`SOURCES`).

    Returns:
      The splits, or None if ``spec`` names no file source (a built-in name, say).
    """
    if sources.parse_spec(spec) is None:
        return None
    return load(spec, seed=seed, **options)
