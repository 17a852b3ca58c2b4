"""``python -m hyperion.agent``: the same as the ``hyperiond`` command."""

import sys

from hyperion.agent.main import main

if __name__ == "__main__":
    sys.exit(main())
