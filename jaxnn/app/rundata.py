"""The data a run trains on and is scored on, checked against what the run recorded.

Chapter 15: a run directory stands alone, and its data never changes meaning without a word.

- :func:`training_data` (``jaxnn train``): loads the dataset, refuses a one-class classification
  set, prints the reader's notes once (entries skipped, missing values dropped or filled), and,
  for a user's file, records its sha256 and keeps a snapshot of the splits in the run
  (:mod:`jaxnn.data.snapshot`). With ``--resume`` (or ``--config`` of a run on the same file)
  the file's sha256 is compared with the recorded one and a changed file is refused; the
  recorded record is kept as it was. A file that is gone is replaced by the snapshot.
- :func:`run_splits` (``jaxnn eval``, ``jaxnn doctor --out``): the run's own splits, from the
  snapshot or the file; a changed file gets one warning line.
- :func:`named_csv` (``jaxnn eval --dataset FILE.csv``): a labelled CSV read by column name, as
  ``jaxnn predict`` reads one, its labels mapped to the run's classes.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from jaxnn.errors import UserError

__all__ = ["check_classes", "is_named_csv", "named_csv", "run_splits", "training_data"]

_LOAD_PREFIX = re.compile(r"^load(\(.*?\))?: ")  # jaxnn.data.load's name: not what the user typed


def _short(digest) -> str:
    return f"{str(digest)[:12]}..."


def _say(*lines: str, file=None) -> None:
    import jax

    if jax.process_index() == 0:
        for line in lines:
            print(line, file=file or sys.stdout, flush=True)


def check_classes(dataset: str, info) -> None:
    """Refuse to train a classifier on data with fewer than two classes.

    Raises:
      UserError: naming the dataset and its one class.
    """
    if info.task != "classification" or info.num_classes >= 2:
        return
    names = list(info.class_names or [])
    raise UserError(
        f"--dataset {dataset}: every example has the same class {names[0] if names else 0!r}; "
        f"expected at least two classes to train a classifier (an image folder needs one "
        f"subfolder per class)"
    )


def _saved_record(config: dict | None) -> dict | None:
    data = (config or {}).get("data")
    source = data.get("source") if isinstance(data, dict) else None
    return source if isinstance(source, dict) and source.get("path") else None


def _current_sha256(source: dict) -> str | None:
    """The sha256 of the recorded file as it is now, or None if it is gone."""
    from jaxnn.data import sources

    spec = f"{source['kind']}:{source['path']}"
    try:
        return sources.source_sha256(spec)
    except UserError:
        return None


def _changed(source: dict) -> tuple[bool, str | None]:
    now = _current_sha256(source)
    return now is not None and now != source.get("sha256"), now


def _from_run(run_dir: Path, source: dict, options: dict, seed: int, what: str, hint: str = ""):
    """The recorded splits: the snapshot if kept, else the file (refused when gone)."""
    from jaxnn import data
    from jaxnn.data import snapshot

    kept = source.get("snapshot") or {}
    if kept.get("file"):
        return snapshot.read_snapshot(run_dir, kept)
    if _current_sha256(source) is None:
        size = kept.get("array_bytes")
        why = f" ({size / 2**20:.0f} MiB of arrays, above the snapshot limit)" if size else ""
        raise UserError(
            f"{what}: the training file {source['path']} is gone and {run_dir} keeps no copy "
            f"of it{why}; put the file back at {source['path']} (sha256 "
            f"{_short(source.get('sha256'))}){hint}"
        )
    splits = data.load(f"{source['kind']}:{source['path']}", seed=seed, **options)
    return splits.replace(info=splits.info.replace(name=source.get("spec", splits.info.name)))


def _refuse_changed(what: str, source: dict, now: str | None, fix: str) -> None:
    raise UserError(
        f"{what}: the training file {source['path']} changed since the run trained on it "
        f"(sha256 {_short(source.get('sha256'))} recorded, {_short(now)} now); {fix}"
    )


def _normalized(splits, normalize: bool):
    from jaxnn.data import pipeline

    return pipeline.standardize(splits)[0] if normalize else splits


def training_data(run, seed: int, options: dict, *, given: dict):
    """``(splits, data record)`` for ``jaxnn train``: normalized splits and what
    ``config.json`` keeps under ``"data"``.

    Raises:
      UserError: for a one-class classification set, a training file changed since the run
        being resumed (or the ``--config`` being reused) recorded it, or a file that is gone
        with no snapshot to replace it.
    """
    from jaxnn.train.run import read_config

    out = Path(run.out)
    if run.resume and (out / "config.json").exists():
        return _resumed(run, out, read_config(out), seed, options)
    saved_dir = Path(run.config).parent if run.config and "dataset" not in given else None
    config = read_config(saved_dir) if saved_dir is not None else None
    source = _saved_record(config)
    if source is not None and saved_dir is not None:
        changed, now = _changed(source)
        if changed:
            fix = "pass --dataset to train on the file as it is now"
            _refuse_changed(f"--config {run.config}", source, now, fix)
        splits = _from_run(saved_dir, source, options, seed, f"--config {run.config}")
    else:
        splits = _load(run.dataset, seed, options)
    return _fresh(run, splits, options, source)


def _load(dataset: str, seed: int, options: dict):
    """``jaxnn.data.load``, its errors told in the user's words: ``--dataset NAME: ...``."""
    from jaxnn import data

    try:
        return data.load(dataset, seed=seed, **options)
    except ValueError as err:
        text = str(err)
        inner = _LOAD_PREFIX.sub("", text, count=1)
        if isinstance(err, UserError) and inner == text:
            raise
        raise UserError(f"--dataset {dataset}: {inner}") from None


def _resumed(run, out: Path, config: dict, seed: int, options: dict):
    """A resumed run's splits and its recorded data record, kept as it was."""
    source = _saved_record(config)
    if source is None:
        splits = _load(run.dataset, seed, options)
        check_classes(run.dataset, splits.info)
        _say(*splits.info.notes)
        return _normalized(splits, run.normalize), config.get("data") or _record(run, options)
    changed, now = _changed(source)
    if changed:
        _refuse_changed("--resume", source, now, "restore the file, or train into a new --out")
    splits = _from_run(out, source, options, seed, "--resume")
    _say(*splits.info.notes)
    return _normalized(splits, run.normalize), config["data"]


def _record(run, options: dict, source=None) -> dict:
    return {"options": options, "normalize": run.normalize, "source": source}


def _fresh(run, splits, options: dict, saved_source: dict | None):
    """A new run's splits, its data record, and its snapshot written into ``--out``."""
    import jax

    from jaxnn.data import snapshot, sources

    check_classes(run.dataset, splits.info)
    _say(*splits.info.notes)
    spec = sources.resolve_spec(run.dataset)
    if saved_source is not None:
        source = {k: v for k, v in saved_source.items() if k != "snapshot"}
    elif sources.parse_spec(spec) is not None:
        source = sources.source_record(spec, **options)
    else:
        return _normalized(splits, run.normalize), _record(run, options)
    if jax.process_index() == 0:
        source["snapshot"] = snapshot.write_snapshot(Path(run.out), splits)
    return _normalized(splits, run.normalize), _record(run, options, source)


def run_splits(out, config: dict, *, command: str):
    """The splits a finished run trained on (not normalized), for ``eval`` and ``doctor``.

    A user's file comes from the run's snapshot when it kept one, else from the file; a file
    changed since training gets one warning line on standard error.

    Raises:
      UserError: if the file is gone and the run keeps no snapshot (the message says where to
        put the file back), or the snapshot fails its digest.
    """
    data = found if isinstance(found := config.get("data"), dict) else {}
    options = data.get("options", {}) if isinstance(data.get("options"), dict) else {}
    seed = int(config["fit"].get("seed", 0))
    source = _saved_record(config)
    if source is None:
        return _load(config["dataset"], seed, options)
    changed, now = _changed(source)
    if changed:
        kept = (source.get("snapshot") or {}).get("file")
        scored = "the run's snapshot of the data as trained" if kept else "the file as it is now"
        _say(
            f"{command}: warning: the training file {source['path']} changed since training "
            f"(sha256 {_short(source.get('sha256'))} recorded, {_short(now)} now); using {scored}",
            file=sys.stderr,
        )
    hint = ", or pass --dataset FILE to score another file" if command == "eval" else ""
    return _from_run(Path(out), source, options, seed, command, hint)


def named_csv(run, path: str, options: dict):
    """A labelled CSV for ``jaxnn eval --dataset``: the run's feature and target columns taken
    by name, the labels mapped to the run's class ids.

    Returns:
      A :class:`jaxnn.data.Dataset` of raw (not normalized) inputs.

    Raises:
      UserError: for a missing column, a bad cell, or a label that is not one of the run's
        classes.
    """
    import numpy as np

    from jaxnn import data
    from jaxnn.app.predict import missing_policy
    from jaxnn.data import sources

    source = _saved_record(run.config) or {}
    delimiter = options.get("delimiter", source.get("options", {}).get("delimiter", ","))
    found = sources.read_csv_inputs(
        path, source["feature_columns"], target=source["target_column"], delimiter=delimiter,
        **missing_policy(run),
    )  # fmt: skip
    if found.y is None:  # a target column was given: read_csv_inputs returns its values
        raise UserError(f"{path}: expected the target column {source['target_column']!r}")
    if run.info.task != "classification":
        y = np.asarray(found.y, np.float32).reshape(len(found.y), -1)
        return data.Dataset(found.x, y)
    names = [str(c) for c in (run.info.class_names or range(run.info.num_classes))]
    labels = sources.label_names(found.y)
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise UserError(
            f"csv:{path}: column {source['target_column']!r} holds classes {unknown[:10]} the run "
            f"was not trained on; expected some of {names}"
        )
    index = {n: i for i, n in enumerate(names)}
    return data.Dataset(found.x, np.asarray([index[n] for n in labels], np.int32))


def is_named_csv(run, spec: str) -> bool:
    """Whether ``jaxnn eval --dataset spec`` reads a CSV by the run's column names."""
    from jaxnn.data import sources

    parsed = sources.parse_spec(sources.resolve_spec(spec))
    source = _saved_record(run.config) or {}
    return parsed is not None and parsed[0] == "csv" and bool(source.get("feature_columns"))
