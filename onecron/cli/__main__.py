"""``python -m onecron.cli``: the ``onecron`` command."""

import sys

from onecron.cli.commands import main

sys.exit(main())
