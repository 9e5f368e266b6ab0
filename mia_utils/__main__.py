from mia_utils.cli import main

raise SystemExit(main())
