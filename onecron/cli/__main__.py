"""``python -m onecron.cli``: the ``onecron`` command."""

import sys

from onecron.cli.program import main

sys.exit(main())
