"""``python -m benchmarks [--quick] [--only ...] [--json PATH]``: see :mod:`benchmarks.bench`."""

from benchmarks.bench import main

raise SystemExit(main())
