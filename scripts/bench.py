"""``jaxnn bench`` as a script: ``python scripts/bench.py [--quick] [--only ...] [--json PATH]``.

See :mod:`jaxnn.bench` for the workloads, the columns and the method.
"""

from jaxnn.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
