"""``python -m rtq``: the same as the ``rtq`` command."""
from rtq.cli import main

raise SystemExit(main())
