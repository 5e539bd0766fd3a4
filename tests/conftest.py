"""Shared test setup: the collection importable as ansible_collections.autopod.autopod.

scripts/setup.sh links this checkout at .collections/ansible_collections/autopod/autopod. pytest-ansible
would otherwise build its own tree of symlinks in the checkout; pytest.ini tells it to use this one
(`--ansible-unit-inject-only`), and it is put on sys.path here because conftest files are imported
before pytest-ansible injects anything.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".collections")
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", COLLECTIONS)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
