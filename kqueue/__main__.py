"""``python -m kqueue``: the kqueue command line."""

from kqueue.cli import main

raise SystemExit(main())
