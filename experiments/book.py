"""The book, executed: every chapter's experiments run and gathered into one offline page.

``python -m experiments`` (or ``jaxnn book``, from a checkout) prints which module implements
which chapter. ``python -m experiments build --out DIR`` runs every experiment of
:data:`EXPERIMENTS`, each in its own process as ``python -m experiments.<name> --out DIR/<name>
[--quick]``, and writes ``DIR/index.html`` (:mod:`experiments.page`): per chapter its claims
(:mod:`experiments.claims`) and the experiments that cover them, each with its figures, sliders,
assertions, measured numbers, a pass/fail mark, the command that reproduces it, the machine it
ran on and the time it took. The page is one self-contained file (figures embedded as data URIs,
inline CSS and script, nothing from elsewhere), so it reads offline and can be copied alone.

A failed or crashed experiment is never hidden: the build prints it, exits 1, and the page marks
it failed with the tail of its output. A rebuild reuses an experiment's results when its cache
key (a hash of the experiment's source, the shared modules' sources and the mode) is unchanged, so
adding one chapter does not rerun the other fourteen. Only passing runs are reused, and only when
the result they recorded is the one on disk: ``run.json`` keeps the SHA-256 of the experiment's
``metrics.json``, and a cached entry is trusted when that digest matches and the file itself
says the claim held (a ``run.json`` edited or planted to say "passed" is rerun).

Every file of the build goes through :mod:`jaxnn._contained`: ``DIR`` and each results folder
are refused when they are links, ``index.html``, ``run.json`` and ``.cache-key`` replace the old
file (never writing through a link at its name), ``log.txt`` is created exclusively, and the
results read back are opened without following links.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from experiments import page
from jaxnn import _contained
from jaxnn.errors import UserError

__all__ = ["BOOK", "EXPERIMENTS", "SHARED", "build_parser", "run", "main", "build", "render_page"]

BOOK = (
    (1, "Neural networks as function approximators", "jaxnn.models.mlp"),
    (2, "Vectors, matrices and layers", "jaxnn.layers.dense, jaxnn.initializers"),
    (3, "Activation functions and nonlinearity", "jaxnn.activations"),
    (4, "Loss functions define the goal", "jaxnn.losses"),
    (5, "Forward pass", "jaxnn.models.*.apply"),
    (6, "Gradient descent", "jaxnn.train.step"),
    (7, "Backpropagation", "jaxnn.gradcheck"),
    (8, "Parameter updates and optimizers", "jaxnn.optim"),
    (9, "Data pipelines and normalization", "jaxnn.data"),
    (10, "Multilayer perceptrons", "jaxnn.models.mlp"),
    (11, "Convolutional neural networks", "jaxnn.layers.conv, jaxnn.models.cnn"),
    (
        12,
        "RNNs and Transformers",
        "jaxnn.layers.{recurrent,attention}, jaxnn.models.{rnn,transformer}",
    ),
    (13, "Generalization, validation, regularization", "jaxnn.train.loop, jaxnn.layers.dropout"),
    (14, "Common failure modes", "jaxnn.diagnostics, jaxnn.data.corrupt, divergence guard"),
    (15, "End-to-end training loop", "jaxnn.train, jaxnn.train.checkpoint, jaxnn.parallel"),
)

#: Every experiment, in chapter order: the module ``experiments/<name>.py`` of this folder.
EXPERIMENTS = (
    "ch01_function_approximation",
    "ch01_one_framework_many_tasks",
    "ch02_batched_matrix_form",
    "ch03_linear_collapse",
    "ch03_no_single_best_activation",
    "ch04_high_accuracy_high_loss",
    "ch05_training_stores_activations",
    "ch06_learning_rate_noise_saddles",
    "ch07_backprop_costs_a_few_forward_passes",
    "ch08_adam_needs_little_tuning",
    "ch08_optimizers_train_vs_validation",
    "ch09_preprocessing",
    "ch10_embeddings_for_categories",
    "ch10_mlp_images_vs_tables",
    "ch11_cnn_vs_mlp",
    "ch11_filter_hierarchy",
    "ch11_translation_equivariance",
    "ch12_gru_vs_transformer",
    "ch12_positions_break_permutation_symmetry",
    "ch13_early_stopping",
    "ch13_regularization_curves",
    "ch14_failure_modes",
    "ch14_remedies",
    "ch14_shortcut_fails_in_deployment",
    "ch15_end_to_end",
)
#: The modules every experiment shares; a change to one reruns them all.
SHARED = ("harness", "style")
PACKAGE, FOLDER = "experiments", Path(__file__).resolve().parent
_LOG_TAIL = 4000  # characters of a failed run's output shown on the page


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """``python -m experiments [build ...]``: the chapter map, or the executed book."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments",
        description="which module implements which chapter; `build` runs the experiments",
    )
    sub = parser.add_subparsers(dest="book_command")
    b = sub.add_parser("build", help="run the experiments and write an offline page DIR/index.html")
    b.add_argument("--out", required=True, help="output directory (results and index.html)")
    b.add_argument("--quick", action="store_true", help="tiny sizes: seconds per experiment")
    b.add_argument(
        "--only",
        default="",
        help="comma-separated experiment names or prefixes to run, e.g. ch03,ch11",
    )
    b.add_argument("--force", action="store_true", help="rerun even when the cache key matches")
    b.add_argument("--verbose", action="store_true", help="show each experiment's output live")
    b.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per experiment")
    return parser


def run(args, **where) -> int:
    """Run ``python -m experiments [build ...]``; returns the exit code (1 when an experiment
    failed). ``where`` goes to :func:`build` (which experiments there are)."""
    if getattr(args, "book_command", None) != "build":
        for number, title, where in BOOK:
            print(f"{number:>2}. {title:<45} {where}")
        return 0
    results = build(
        Path(args.out),
        quick=args.quick,
        only=[s for s in args.only.split(",") if s.strip()],
        force=args.force,
        timeout=args.timeout,
        verbose=args.verbose,
        **where,
    )
    failed = [r["name"] for r in results if r["ran"] and r["status"] != "passed"]
    print(f"wrote {Path(args.out) / 'index.html'}", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr, flush=True)
        return 1
    return 0


def main(argv=None, **where) -> int:
    """``python -m experiments [build ...]`` (``jaxnn book`` runs it from a checkout)."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args, **where)
    except ValueError as err:
        print(f"python -m experiments: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0


# --------------------------------------------------------------------------------------------
# Discovery and cache
# --------------------------------------------------------------------------------------------


def chapter_of(name: str) -> int:
    """The chapter number of an experiment module name: ``ch03_linear_collapse`` -> 3."""
    return int(name[2:4])


def select(names: list[str], only: list[str]) -> list[str]:
    """The names matching any of ``only`` (a full name or a prefix such as ``ch03``)."""
    if not only:
        return list(names)
    tokens = [t.strip() for t in only]
    unknown = [t for t in tokens if not any(n.startswith(t) for n in names)]
    if unknown:
        raise UserError(
            f"book build: --only {','.join(unknown)} matches no experiment; expected names or "
            f"prefixes of: {', '.join(names)}"
        )
    return [n for n in names if any(n.startswith(t) for t in tokens)]


def cache_key(folder: Path, name: str, shared, quick: bool) -> str:
    """sha256 of the experiment's source ``folder/name.py``, the ``shared`` modules' sources
    and the mode."""
    h = hashlib.sha256()
    for module in (name, *shared):
        path = folder / f"{module}.py"
        if not path.is_file():
            raise UserError(f"book build: expected the source file {path}, got none")
        h.update(module.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(b"quick" if quick else b"full")
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def machine() -> dict:
    """Where the experiments run: platform, CPU, Python, and JAX's version and backend."""
    info = {
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        import jax

        info.update(
            jax=jax.__version__,
            backend=jax.default_backend(),
            devices=f"{jax.device_count()} x {jax.devices()[0].device_kind}",
        )
    except Exception as err:  # the page still builds; the failure is shown, not hidden
        info["jax"] = f"unavailable: {err}"
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def command_for(package: str, name: str, out: Path | None, quick: bool) -> list[str]:
    """The command that runs one experiment into ``out``; without ``out``, the command that
    reproduces it from the checkout's root (into ``runs/experiments/<name>``), as the page shows
    it: no path of the building machine in it."""
    cmd = ["python", "-m", f"{package}.{name}"] + (["--out", str(out)] if out is not None else [])
    return cmd + (["--quick"] if quick else [])


def _read_json(path: Path):
    try:
        return json.loads(_contained.read_bytes(path, name="book build"))
    except (OSError, ValueError):  # missing, a link (a UserError) or not JSON: no record
        return None


def _sha256_file(path: Path) -> str | None:
    """The SHA-256 of the regular file ``path`` (read without following a link), or None."""
    try:
        return hashlib.sha256(_contained.read_bytes(path, name="book build")).hexdigest()
    except (OSError, ValueError):
        return None


def _stream(cmd: list[str], log: Path, *, timeout: float, echo: bool) -> int | None:
    """Run ``cmd``, copying its output (stdout and stderr) line by line to ``log`` and, with
    ``echo``, to the terminal. Returns the exit code, or None when killed after ``timeout``."""
    timed_out = threading.Event()
    with _Log(_contained.open_new(log)) as sink:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: a timeout ends its children too
        )

        def kill():
            timed_out.set()
            os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            for line in proc.stdout:
                sink.write(line)
                if echo:
                    print(f"    {line}", end="", flush=True)
            code = proc.wait()
        finally:
            timer.cancel()
        if timed_out.is_set():
            sink.write(f"\n[killed: still running after the --timeout of {timeout:g} s]\n")
            return None
    return code


class _Log:
    """A text sink over a file made by :func:`jaxnn._contained.open_new`."""

    def __init__(self, file):
        self._file = file

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()

    def write(self, text: str) -> None:
        self._file.write(text.encode("utf-8", errors="replace"))


def _children_cpu() -> float:
    """User and system CPU seconds of the finished child processes so far (a run's CPU time is
    the difference across it; on a shared machine it says more than the wall time)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_one(package, name, out: Path, *, quick, timeout, key, host, echo=False) -> dict:
    """Run one experiment in a subprocess; returns its record (also written to ``run.json``)."""
    exp_dir = out / name
    if exp_dir.is_symlink() or (exp_dir.exists() and not exp_dir.is_dir()):
        raise UserError(
            f"book build: expected {exp_dir} to be a results directory written by a build, got a "
            "link or a file; remove it or choose another --out"
        )
    if exp_dir.exists():
        shutil.rmtree(exp_dir)  # our own subdirectory of DIR: results of an older run
    exp_dir.mkdir(parents=True)
    _contained.ensure_dir("book build", exp_dir)
    cmd = command_for(package, name, exp_dir, quick)
    t0, cpu0 = time.perf_counter(), _children_cpu()
    code = _stream([sys.executable, *cmd[1:]], exp_dir / "log.txt", timeout=timeout, echo=echo)
    seconds, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    doc = _read_json(exp_dir / "metrics.json")
    passed = code == 0 and doc is not None and doc.get("claim_held") is True
    record = {
        "result_sha256": _sha256_file(exp_dir / "metrics.json"),
        "name": name,
        "status": "passed" if passed else "failed",
        "returncode": code,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "command": shlex.join(command_for(package, name, None, quick)),
        "quick": quick,
        "key": key,
        "machine": host,
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    _contained.write_replacing(exp_dir / "run.json", (json.dumps(record, indent=2) + "\n").encode())
    if passed:
        _contained.write_replacing(exp_dir / ".cache-key", (key + "\n").encode())
    return record


def _cached(exp_dir: Path, key: str) -> dict | None:
    """The stored record when ``exp_dir`` holds a passing run with cache key ``key`` whose
    recorded result is the one on disk (:func:`verified`)."""
    if os.path.islink(exp_dir):
        return None
    try:
        stored = _contained.read_text(exp_dir / ".cache-key", name="book build").strip()
    except (OSError, ValueError):
        stored = None
    record = _read_json(exp_dir / "run.json")
    if stored != key or record is None or record.get("status") != "passed":
        return None
    return record if verified(exp_dir, record) else None


def verified(exp_dir: Path, record: dict) -> bool:
    """Whether a "passed" ``record`` is borne out by ``exp_dir``: its ``metrics.json`` has the
    SHA-256 the record keeps and says the claim held."""
    digest = record.get("result_sha256")
    doc = _read_json(exp_dir / "metrics.json")
    return (
        isinstance(digest, str)
        and digest == _sha256_file(exp_dir / "metrics.json")
        and isinstance(doc, dict)
        and doc.get("claim_held") is True
    )


def build(
    out: Path,
    *,
    quick=False,
    only=(),
    force=False,
    timeout=3600.0,
    verbose=False,
    package: str = PACKAGE,
    folder: Path = FOLDER,
    names=EXPERIMENTS,
    shared=SHARED,
):
    """Run the selected experiments (reusing cached passes) and write ``out/index.html``.

    ``package``, ``folder``, ``names`` and ``shared`` say which experiments there are: by
    default this folder's :data:`EXPERIMENTS` and :data:`SHARED` (a test passes its own).

    Returns:
      One dict per experiment: ``name``, ``status`` (passed, failed, not built,
      stale), ``ran`` (run or reused in this build) and the stored record.
    """
    names = sorted(names, key=lambda n: (chapter_of(n), n))
    chosen = select(names, list(only))
    _contained.ensure_dir("book build --out", out)
    host = machine()
    print(
        f"book build: {len(chosen)} of {len(names)} experiments, "
        f"{'quick' if quick else 'full'} mode -> {out}",
        flush=True,
    )
    results = []
    for i, name in enumerate(chosen, 1):
        key = cache_key(folder, name, shared, quick)
        record = None if force else _cached(out / name, key)
        prefix = f"[{i}/{len(chosen)}] {name}"
        if record is not None:
            print(f"{prefix}: cached ({record['status']}, {record['seconds']:.1f} s)", flush=True)
        else:
            print(f"{prefix}: running ...", flush=True)
            record = run_one(
                package, name, out, quick=quick, timeout=timeout, key=key, host=host, echo=verbose
            )
            print(
                f"{prefix}: {record['status']} in {record['seconds']:.1f} s "
                f"(CPU {record['cpu_seconds']:.1f} s)",
                flush=True,
            )
            if record["status"] != "passed":
                print(_tail(out / name / "log.txt", 1500), file=sys.stderr, flush=True)
        results.append({**record, "ran": True})
    done = {r["name"] for r in results}
    for name in names:
        if name not in done:
            key = cache_key(folder, name, shared, quick)
            results.append(_previous(out / name, name, key, quick))
    results.sort(key=lambda r: (chapter_of(r["name"]), r["name"]))
    text = render_page(out, results, quick=quick, host=host, folder=folder, package=package)
    _contained.write_replacing(out / "index.html", text.encode("utf-8"))
    return results


def _previous(exp_dir: Path, name: str, key: str, quick: bool) -> dict:
    """A result left in ``exp_dir`` by an earlier build (same mode), or a "not built" record."""
    record = _read_json(exp_dir / "run.json")
    if record is None or record.get("quick") != quick:
        return {"name": name, "status": "not built", "ran": False, "quick": quick}
    if record.get("key") != key:
        return {**record, "status": "stale", "ran": False}
    if record.get("status") == "passed" and not verified(exp_dir, record):
        return {**record, "status": "stale", "ran": False}  # its result is not the one on disk
    return {**record, "ran": False}


def _tail(path: Path, chars: int = _LOG_TAIL) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return text[-chars:] if len(text) > chars else text


# --------------------------------------------------------------------------------------------
# The page (experiments.page)
# --------------------------------------------------------------------------------------------


def render_page(out: Path, results: list[dict], *, quick: bool, host: dict, **where) -> str:
    """The whole ``index.html`` (see :mod:`experiments.page`); ``where`` may name the
    ``folder`` and ``package`` of the experiments (their source links and commands)."""
    return page.render_page(
        out,
        results,
        quick=quick,
        host=host,
        book=BOOK,
        folder=where.get("folder", FOLDER),
        package=where.get("package", PACKAGE),
        chapter_of=chapter_of,
        tail=_tail,
    )


if __name__ == "__main__":
    sys.exit(main())
