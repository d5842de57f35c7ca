import sys

from pytest_hfmodels.cli import main

sys.exit(main())
