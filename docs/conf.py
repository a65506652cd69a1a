"""Sphinx configuration of onecron's documentation.

Build the pages with ``python -m sphinx docs docs/_build/html`` and run
every example in them with ``python -m sphinx -b doctest docs
docs/_build/doctest`` (``tests/test_docs.py`` does both, warnings as
errors).
"""

from __future__ import annotations

import os
import sys

# the checkout's onecron, not an installed one
sys.path.insert(0, os.path.abspath('..'))

import onecron

project = 'onecron'
author = 'the onecron authors'
copyright = 'the onecron authors, MIT licensed'
version = release = onecron.__version__

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.doctest',
]

# no network while building: no intersphinx, no remote images
exclude_patterns = ['_build']
templates_path: list[str] = []
html_static_path = ['_static']
html_theme = 'alabaster'
html_theme_options = {
    'description': 'Cron jobs that run inside your WSGI application',
    'fixed_sidebar': False,
}
html_title = f'onecron {release}'

# the README's own style: ``literal`` for code, no default role
default_role = None
nitpicky = False

autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_default_options = {
    'members': True,
    'show-inheritance': True,
}

# doctests run in the build process: no scheduler may ever start in it
doctest_global_setup = '''
import onecron.running.autostart
onecron.running.autostart.disable()
'''
