"""``jaxnn export``: a finished run's best-validation weights, as a file other programs read.

Chapter 15: the model to keep is the one with the best validation metric; exported, it no longer
needs jaxnn's checkpoints. ``--format safetensors`` writes a jaxnn model file
(:func:`jaxnn.weights.save_model`: tensors ``params.*`` and ``state.*``, the model's name and
config in the header, read back by :func:`jaxnn.weights.load_model`). ``--format torch`` writes
the state dict of the model's PyTorch twin (:func:`jaxnn.weights.to_torch`), which
``module.load_state_dict(safetensors.torch.load_file(path))`` takes as it is.

Beside the weights goes a JSON file of the same name (``model.json`` beside
``model.safetensors``): the layout, the model and its config, the name map (torch), and the
run's config and data info (classes, normalization statistics, tokenizer), which a user of the
weights needs to feed the model its inputs.

By default both go to the run's ``export/`` folder. A run directory is untrusted input: an
``export/`` that is, or holds, a symbolic link is refused; a ``--to`` file of the user's is
replaced (a link there included), never written through.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

from jaxnn import weights
from jaxnn._contained import check_tree, write_replacing
from jaxnn.app import predict
from jaxnn.app.flags import add_flags
from jaxnn.errors import UserError
from jaxnn.train.config import check_field_types, setting
from jaxnn.train.run import info_to_json

__all__ = ["ExportOptions", "Exported", "add_parser", "export", "run"]

FORMATS = ("safetensors", "torch")
_SUFFIX = ".safetensors"
_DEFAULT_NAMES = {"safetensors": "model.safetensors", "torch": "model.torch.safetensors"}


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """What to export and where; the flags of ``jaxnn export`` are made from these fields."""

    out: str = setting(help="the run directory written by `jaxnn train`.")
    format: str = setting(
        "safetensors",
        "safetensors: jaxnn's names, a model file jaxnn.weights.load_model reads; "
        "torch: the state dict of the model's PyTorch twin.",
        choices=FORMATS,
    )
    to: str = setting(
        "",
        "the file to write, ending in .safetensors (the JSON goes beside it); "
        "default: RUN/export/model.safetensors, or model.torch.safetensors for torch.",
        metavar="FILE",
    )

    def __post_init__(self):
        check_field_types(self)
        if self.format not in FORMATS:
            raise UserError(f"--format: expected one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.to and not self.to.endswith(_SUFFIX):
            raise UserError(f"--to {self.to}: expected a file name ending in {_SUFFIX}")


class Exported(typing.NamedTuple):
    """What :func:`export` wrote: the weights file, the JSON beside it and the tensor count."""

    weights: Path
    config: Path
    tensors: int


def add_parser(subparsers):
    """Add ``jaxnn export`` to an ``argparse`` subparsers object; returns its parser. Its flags
    are the fields of :class:`ExportOptions`."""
    p = subparsers.add_parser(
        "export",
        help="write a run's best-validation weights as safetensors (jaxnn's or PyTorch's names)",
        description="Write a finished run's best-validation weights as a safetensors file, in "
        "jaxnn's names or as the state dict of the model's PyTorch twin, with the run's config "
        "beside it.",
    )
    add_flags(p, ExportOptions)
    return p


def _destination(out: Path, options: ExportOptions) -> Path:
    if options.to:
        path = Path(options.to)
        if not path.parent.is_dir():
            raise UserError(f"--to {path}: expected an existing folder {path.parent}, got none")
        return path
    folder = out / "export"
    check_tree("jaxnn export", folder)  # no link in or at the run's export folder
    folder.mkdir(exist_ok=True)
    return folder / _DEFAULT_NAMES[options.format]


def _torch_tensors(run) -> tuple[dict, dict, list]:
    try:
        tensors = weights.to_torch(run.model, run.params, run.model_state)
        names = [e._asdict() for e in weights.torch_names(run.model)]
    except ValueError as err:
        raise UserError(f"export --format torch: {err}") from None
    metadata = {"format": "pt", **weights.model_metadata(run.model, layout="torch")}
    return tensors, metadata, names


def _sidecar(run, path: Path, layout: str, names: list | None) -> dict:
    return {
        "format_version": weights.FORMAT_VERSION,
        "weights": path.name,
        "layout": layout,
        "model": run.model.name,
        "model_config": dataclasses.asdict(run.model.cfg),
        **({"names": names} if names is not None else {}),
        "run_id": run.config.get("run_id"),
        "run_config": run.config,
        "data_info": info_to_json(run.info),
    }


def export(options: ExportOptions) -> Exported:
    """Write a run's best-validation weights and the JSON beside them.

    Chapter 15: the best-validation params (and batch-norm statistics) of ``options.out``, read
    by :func:`jaxnn.app.predict.load_run` and checked against their digest, in the layout asked.

    Returns:
      The :class:`Exported` paths and tensor count.

    Raises:
      UserError: a directory that is not a finished run with a checkpoint, an export folder
        that is or holds a link, a ``--to`` folder that does not exist, or a model the torch
        layout cannot express (one line each).
    """
    run = predict.load_run(options.out)
    path = _destination(run.out, options)
    if options.format == "torch":
        tensors, metadata, names = _torch_tensors(run)
        weights.save_tensors(path, tensors, metadata=metadata)
        count, layout = len(tensors), "torch"
    else:
        weights.save_model(path, run.model, run.params, run.model_state)
        count, layout, names = len(weights.flatten((run.params, run.model_state))), "jaxnn", None
    config = path.with_name(path.name[: -len(_SUFFIX)] + ".json")
    text = json.dumps(_sidecar(run, path, layout, names), indent=2, allow_nan=False) + "\n"
    write_replacing(config, text.encode())
    return Exported(path, config, count)


def run(options: ExportOptions) -> int:
    """``jaxnn export``: export, then print one line saying what was written."""
    done = export(options)
    print(f"wrote {done.weights} ({done.tensors} tensors) and {done.config}")
    return 0
