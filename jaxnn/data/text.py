"""Tokenization — Chapter 9: converting text into discrete units a model can process.

Two tokenizers, both fitted on training text only (fitting on validation or test text would leak
their vocabulary into training):

- :class:`CharTokenizer`: one id per character seen in the training text, plus id 0 for
  ``<unk>``. Characters never seen in training encode to id 0 and decode to ``"\\ufffd"``.
- :class:`BPETokenizer`: byte-level byte-pair encoding. Ids 0..255 are the bytes of the UTF-8
  encoding, each later id is a merge of two earlier ones learned from pair counts in the training
  text. Any string encodes (there are no unknown symbols) and decodes back exactly.

Both describe themselves as a JSON-able dict (``to_json``), rebuilt exactly by
:func:`tokenizer_from_json`, and save and load that as a JSON file; decoding an id outside the
vocabulary raises ``ValueError``. :func:`lm_windows` cuts a token stream into next-token
prediction pairs.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from collections import defaultdict
from pathlib import Path

import numpy as np

from jaxnn._checks import check_positive_int

__all__ = [
    "UNK",
    "CharTokenizer",
    "BPETokenizer",
    "load_tokenizer",
    "tokenizer_from_json",
    "lm_windows",
]

UNK = "<unk>"
_UNK_TEXT = "\ufffd"  # what an <unk> id decodes to: one character, so positions line up


def _check_ids(name: str, ids, vocab_size: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of ids, got shape {ids.shape}")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name}: expected integer ids, got dtype {ids.dtype}")
    bad = ids[(ids < 0) | (ids >= vocab_size)] if ids.size else ids
    if bad.size:
        raise ValueError(
            f"{name}: expected ids in [0, {vocab_size}), got unknown ids "
            f"{sorted(set(bad.tolist()))[:10]}"
        )
    return ids.astype(np.int64)


def _derived() -> typing.Any:
    """A field that ``__post_init__`` computes from the others: not an argument, not shown."""
    return dataclasses.field(init=False, repr=False, compare=False)


@dataclasses.dataclass(frozen=True, eq=False)
class CharTokenizer:
    """Character-level tokenizer: id 0 is ``<unk>``, ids ``1..len(chars)`` are ``chars``.

    Attributes:
      chars: the known characters, sorted by code point.
    """

    chars: tuple[str, ...]
    unk_id: int = dataclasses.field(default=0, init=False)
    _codes: np.ndarray = _derived()  # (V - 1,) code points, for encode

    def __post_init__(self):
        chars = tuple(self.chars)
        if any(len(c) != 1 for c in chars) or list(chars) != sorted(set(chars)):
            raise ValueError("CharTokenizer: expected sorted, distinct single characters")
        object.__setattr__(self, "chars", chars)
        codes = np.array([ord(c) for c in chars], dtype=np.int64)  # (V - 1,)
        object.__setattr__(self, "_codes", codes)

    @classmethod
    def fit(cls, text: str) -> CharTokenizer:
        """Learn the character vocabulary of ``text`` (the training text only)."""
        if not isinstance(text, str) or not text:
            raise ValueError(f"CharTokenizer.fit: expected non-empty text, got {text!r:.40}")
        return cls(tuple(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        """Number of ids, ``<unk>`` included."""
        return len(self.chars) + 1

    def encode(self, text: str) -> np.ndarray:
        """Encode ``text`` to int32 ids (T,); characters not in the vocabulary become ``unk_id``."""
        if not isinstance(text, str):
            raise ValueError(f"CharTokenizer.encode: expected str, got {type(text).__name__}")
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)  # (T,)
        pos = np.searchsorted(self._codes, points)
        found = self._codes[np.minimum(pos, len(self._codes) - 1)] == points
        return np.where(found, pos + 1, self.unk_id).astype(np.int32)

    def decode(self, ids) -> str:
        """Decode ids to text; ``unk_id`` decodes to ``"\\ufffd"``.

        Raises:
          ValueError: if an id is outside ``[0, vocab_size)``.
        """
        ids = _check_ids("CharTokenizer.decode", ids, self.vocab_size)
        table = (_UNK_TEXT, *self.chars)
        return "".join(table[i] for i in ids)

    def to_json(self) -> dict:
        """The vocabulary as a JSON-able dict ``{"type": "char", "chars": "..."}``."""
        return {"type": "char", "chars": "".join(self.chars)}

    @classmethod
    def from_json(cls, data: dict | str) -> CharTokenizer:
        """Rebuild a tokenizer from :meth:`to_json` output (the dict or its JSON text)."""
        obj = _json_object("CharTokenizer.from_json", data, "char")
        chars = obj.get("chars")
        if not isinstance(chars, str):
            raise ValueError(
                f"CharTokenizer.from_json: expected 'chars' to be a string, got {chars!r:.60}"
            )
        return cls(tuple(chars))

    def save(self, path) -> None:
        """Write the vocabulary to ``path`` as UTF-8 JSON."""
        _write_json(path, self.to_json())


# Pre-tokenization: merges never cross these chunks (a word with its leading space, a run of
# punctuation, or whitespace), which keeps training fast and tokens word-like.
_CHUNK = re.compile(r" ?[^\W_]+| ?[^\s\w]+|_+|\s+(?!\S)|\s+")


def _merge(word: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def _count_pairs(pair_count: dict, where: dict | None, word: list[int], wi: int, count: int):
    """Add ``count`` (negative to remove) for each adjacent pair of ``word``; index it in ``where``.

    Pairs whose count drops to zero are deleted, so ``pair_count`` holds only live pairs.
    """
    for p in zip(word, word[1:], strict=False):
        pair_count[p] += count
        if pair_count[p] <= 0:
            del pair_count[p]
        elif where is not None:
            where[p].add(wi)


def _chunk_counts(text: str) -> tuple[list[list[int]], list[int]]:
    """The distinct pre-tokenized chunks of ``text`` as UTF-8 bytes, and how often each occurs."""
    freq: dict[str, int] = defaultdict(int)
    for chunk in _CHUNK.findall(text):
        freq[chunk] += 1
    return [list(w.encode("utf-8")) for w in freq], list(freq.values())


def _learn_merges(words: list[list[int]], counts: list[int], max_merges: int) -> list:
    """Merge the most frequent adjacent pair (ties: the smaller pair) until none occurs twice.

    ``words`` are rewritten in place; the learned pairs are returned in order.
    """
    pair_count: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for wi, w in enumerate(words):
        _count_pairs(pair_count, where, w, wi, counts[wi])
    merges: list[tuple[int, int]] = []
    while len(merges) < max_merges and pair_count:
        best = max(pair_count, key=lambda p: (pair_count[p], -p[0], -p[1]))
        if pair_count[best] < 2:
            break
        _apply_merge(words, counts, pair_count, where, best, 256 + len(merges))
        merges.append(best)
    return merges


def _apply_merge(words, counts, pair_count, where, pair, new_id) -> None:
    """Replace ``pair`` by ``new_id`` in every word that holds it, updating the pair counts."""
    for wi in sorted(where.pop(pair)):
        new = _merge(words[wi], pair, new_id)
        if len(new) == len(words[wi]):
            continue  # a stale index: the pair left this word in an earlier merge
        _count_pairs(pair_count, None, words[wi], wi, -counts[wi])
        _count_pairs(pair_count, where, new, wi, counts[wi])
        words[wi] = new


@dataclasses.dataclass(frozen=True, eq=False)
class BPETokenizer:
    """Byte-level byte-pair-encoding tokenizer.

    Chapter 9: ids 0..255 are raw UTF-8 bytes; merge ``k`` (a pair of earlier ids) creates id
    ``256 + k``. Training repeatedly merges the most frequent adjacent pair in the training text
    (ties broken by the smaller pair); encoding applies the merges in the order they were learned.

    Attributes:
      merges: the learned pairs, in order.
    """

    merges: tuple[tuple[int, int], ...]
    unk_id: None = dataclasses.field(default=None, init=False)
    _ranks: dict[tuple[int, int], int] = _derived()  # pair -> the id its merge makes
    _pieces: tuple[bytes, ...] = _derived()  # the bytes of each id
    _cache: dict[str, list[int]] = _derived()  # a chunk's ids, once encoded

    def __post_init__(self):
        merges = tuple((int(a), int(b)) for a, b in self.merges)
        for k, (a, b) in enumerate(merges):
            if not (0 <= a < 256 + k and 0 <= b < 256 + k):
                raise ValueError(f"BPETokenizer: merge {k} uses an id not yet defined: {(a, b)}")
        object.__setattr__(self, "merges", merges)
        object.__setattr__(self, "_ranks", {p: 256 + k for k, p in enumerate(merges)})
        pieces = [bytes([i]) for i in range(256)]
        for a, b in merges:
            pieces.append(pieces[a] + pieces[b])
        object.__setattr__(self, "_pieces", tuple(pieces))
        object.__setattr__(self, "_cache", {})

    @classmethod
    def fit(cls, text: str, *, vocab_size: int = 512) -> BPETokenizer:
        """Learn up to ``vocab_size - 256`` merges from ``text`` (the training text only).

        Training stops early when no adjacent pair occurs twice, so the vocabulary can come out
        smaller than ``vocab_size`` on a short text.
        """
        check_positive_int("BPETokenizer.fit", vocab_size, "vocab_size")
        if vocab_size < 256:
            raise ValueError(f"BPETokenizer.fit: expected vocab_size >= 256, got {vocab_size}")
        if not isinstance(text, str) or not text:
            raise ValueError(f"BPETokenizer.fit: expected non-empty text, got {text!r:.40}")
        words, counts = _chunk_counts(text)
        return cls(tuple(_learn_merges(words, counts, vocab_size - 256)))

    @property
    def vocab_size(self) -> int:
        """Number of ids: 256 bytes plus one per merge."""
        return 256 + len(self.merges)

    def _encode_chunk(self, chunk: str) -> list[int]:
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        word = list(chunk.encode("utf-8"))
        while len(word) > 1:
            pairs = zip(word, word[1:], strict=False)
            ranked = [self._ranks[p] for p in pairs if p in self._ranks]
            if not ranked:
                break
            new_id = min(ranked)
            word = _merge(word, self.merges[new_id - 256], new_id)
        self._cache[chunk] = word
        return word

    def encode(self, text: str) -> np.ndarray:
        """Encode ``text`` to int32 ids (T,). Every string encodes: there are no unknown symbols."""
        if not isinstance(text, str):
            raise ValueError(f"BPETokenizer.encode: expected str, got {type(text).__name__}")
        ids = [i for chunk in _CHUNK.findall(text) for i in self._encode_chunk(chunk)]
        return np.asarray(ids, dtype=np.int32)

    def decode(self, ids) -> str:
        """Decode ids to text (bytes that do not form valid UTF-8 become ``"\\ufffd"``).

        Raises:
          ValueError: if an id is outside ``[0, vocab_size)``.
        """
        ids = _check_ids("BPETokenizer.decode", ids, self.vocab_size)
        return b"".join(self._pieces[i] for i in ids).decode("utf-8", errors="replace")

    def to_json(self) -> dict:
        """The merges as a JSON-able dict ``{"type": "bpe", "merges": [[a, b], ...]}``."""
        return {"type": "bpe", "merges": [list(m) for m in self.merges]}

    @classmethod
    def from_json(cls, data: dict | str) -> BPETokenizer:
        """Rebuild a tokenizer from :meth:`to_json` output (the dict or its JSON text)."""
        obj = _json_object("BPETokenizer.from_json", data, "bpe")
        merges = obj.get("merges")
        pairs = isinstance(merges, list) and all(
            isinstance(m, list) and len(m) == 2 and all(type(i) is int for i in m) for m in merges
        )
        if not pairs:
            raise ValueError(
                f"BPETokenizer.from_json: expected 'merges' to be a list of [id, id] pairs, got "
                f"{merges!r:.60}"
            )
        return cls(tuple((int(a), int(b)) for a, b in typing.cast(list, merges)))

    def save(self, path) -> None:
        """Write the merges to ``path`` as JSON."""
        _write_json(path, self.to_json())


def _json_object(name: str, data, kind: str) -> dict:
    obj = json.loads(data) if isinstance(data, str) else data
    if not isinstance(obj, dict) or obj.get("type") != kind:
        got = obj.get("type") if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{name}: expected a dict with type {kind!r}, got {got!r}")
    return obj


def _write_json(path, obj: dict) -> None:
    Path(path).write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")


_TOKENIZERS: dict[str, type[CharTokenizer] | type[BPETokenizer]] = {
    "char": CharTokenizer,
    "bpe": BPETokenizer,
}


def tokenizer_from_json(data: dict | str) -> CharTokenizer | BPETokenizer:
    """Rebuild a tokenizer from its ``to_json()`` dict (or that dict's JSON text).

    The ``type`` field picks the class; the result encodes and decodes exactly as the tokenizer
    that wrote it.

    Raises:
      ValueError: if ``type`` is neither ``"char"`` nor ``"bpe"`` or the vocabulary is malformed.
    """
    obj = json.loads(data) if isinstance(data, str) else data
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind not in _TOKENIZERS:
        raise ValueError(f"tokenizer_from_json: expected type 'char' or 'bpe', got {kind!r}")
    return _TOKENIZERS[kind].from_json(obj)


def load_tokenizer(path) -> CharTokenizer | BPETokenizer:
    """Load a tokenizer saved with ``save``; the JSON ``type`` field picks the class."""
    data = Path(path).read_text(encoding="utf-8")
    try:
        return tokenizer_from_json(data)
    except ValueError as e:
        raise ValueError(f"load_tokenizer: {path}: {e}") from None


def lm_windows(ids, seq_len: int, stride: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cut a token stream into next-token prediction windows.

    Chapter 12: a language model reads ``ids[s : s + T]`` and predicts ``ids[s + 1 : s + T + 1]``,
    for window starts ``s = 0, stride, 2 * stride, ...`` while the target still fits.

    Args:
      ids: token ids (L,).
      seq_len: window length ``T``.
      stride: distance between window starts; ``seq_len`` (no overlap) by default.

    Returns:
      ``(inputs, targets)``, each int32 (N, T) with ``N = (L - T - 1) // stride + 1`` and
      ``targets[:, :-1] == inputs[:, 1:]``.

    Raises:
      ValueError: if ``ids`` is not 1-D integer or is shorter than ``seq_len + 1``.
    """
    seq_len = check_positive_int("lm_windows", seq_len, "seq_len")
    stride = seq_len if stride is None else check_positive_int("lm_windows", stride, "stride")
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"lm_windows: expected 1-D integer ids, got {ids.dtype} {ids.shape}")
    if len(ids) < seq_len + 1:
        raise ValueError(
            f"lm_windows: expected at least seq_len + 1 = {seq_len + 1} ids, got {len(ids)}"
        )
    windows = np.lib.stride_tricks.sliding_window_view(ids, seq_len + 1)[::stride]  # (N, T + 1)
    windows = windows.astype(np.int32)
    return windows[:, :-1].copy(), windows[:, 1:].copy()  # (N, T), (N, T)
