from scoreboard.ops.cli import main

raise SystemExit(main())
