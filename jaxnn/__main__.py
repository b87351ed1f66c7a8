from jaxnn.app.cli import main

raise SystemExit(main())
