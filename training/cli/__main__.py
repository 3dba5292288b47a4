"""`python -m training.cli ...` runs the `musicsae` command line."""

import sys

from training.cli.main import main

sys.exit(main())
