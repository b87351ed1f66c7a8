"""``python -m experiments [build ...]``: the chapter map, or the executed book."""

from experiments.book import main

raise SystemExit(main())
