"""`python -m scaler` runs the command line, exactly like the `queue-scaler` script."""

from scaler import cli

raise SystemExit(cli.main())
