from jaxnn.cli import main

raise SystemExit(main())
