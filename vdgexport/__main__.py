"""``python -m vdgexport``: the command line."""

from .cli import main

raise SystemExit(main())
