"""`python -m evalruns`: the command line, as the `evalruns` script."""

import sys

from evalruns.cli import main

sys.exit(main())
