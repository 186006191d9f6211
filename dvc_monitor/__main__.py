from dvc_monitor.cli import main

raise SystemExit(main())
