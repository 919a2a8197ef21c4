"""``python -m pbx``: the same as the ``pbx`` command."""

import sys

from pbx.cli import main

sys.exit(main())
