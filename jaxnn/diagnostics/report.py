"""The one report type of the chapter-14 detectors: a verdict, whether it is ok, a one-line
message and the evidence behind them.

Every detector of :mod:`jaxnn.diagnostics` that judges returns a :class:`Report` subclass (a
frozen dataclass): ``verdict`` names what it found, ``ok`` says whether that is a problem,
``message`` is one line with the numbers, ``evidence`` holds the numbers themselves (the
subclass's own fields) and ``to_json()`` gives all of it as plain JSON values.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import ClassVar

import jax
import numpy as np

__all__ = ["Report", "jsonable"]


@dataclasses.dataclass(frozen=True)
class Report:
    """What a chapter-14 detector found.

    Chapter 14: "neural networks fail in predictable ways that are often diagnosable"; a report
    is one diagnosis. Subclasses add the evidence as fields and list their verdicts: ``OK`` those
    that name no problem, ``PROBLEMS`` those that do.

    Attributes:
      verdict: what the detector found, one of ``OK + PROBLEMS``.
      message: one line with the numbers behind the verdict.

    Raises:
      ValueError: if ``verdict`` is not one of the subclass's verdicts.
    """

    verdict: str
    message: str

    OK: ClassVar[tuple[str, ...]] = ("healthy",)
    PROBLEMS: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        if self.verdict not in self.OK + self.PROBLEMS:
            raise ValueError(
                f"{type(self).__name__}: expected a verdict from "
                f"{', '.join(self.OK + self.PROBLEMS)}, got {self.verdict!r}"
            )

    @property
    def ok(self) -> bool:
        """Whether the verdict names no problem."""
        return self.verdict in self.OK

    @property
    def evidence(self) -> dict:
        """The numbers behind the verdict: every field but ``verdict`` and ``message``."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("verdict", "message")
        }

    def to_json(self) -> dict:
        """``{"verdict", "ok", "message", **evidence}`` in plain JSON values (:func:`jsonable`)."""
        head = {"verdict": self.verdict, "ok": self.ok, "message": self.message}
        return {**head, **jsonable(self.evidence)}


def _number(value):
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return bool(value) if isinstance(value, np.bool_) else value


def jsonable(value):
    """``value`` with arrays, NumPy scalars and dataclasses turned into JSON types (NaN -> None).

    Chapter 14: the evidence of a diagnosis, written to ``doctor.json``.
    """
    if dataclasses.is_dataclass(value):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, jax.Array)):
        return jsonable(np.asarray(value).tolist())
    return _number(value)
