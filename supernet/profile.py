"""``python -m supernet.profile``: see ``supernet.profiling.main``."""

import sys

from supernet.profiling import main

if __name__ == "__main__":
    sys.exit(main())
