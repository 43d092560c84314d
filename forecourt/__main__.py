from forecourt.cli import main

raise SystemExit(main())
