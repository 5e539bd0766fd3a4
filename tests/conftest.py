"""Shared test setup: the collection importable as ansible_collections.autopod.autopod.

scripts/setup.sh links this checkout at .collections/ansible_collections/autopod/autopod. Ansible's
collection finder is installed here with that path, as ansible-test does for unit tests, because
conftest files are imported before pytest-ansible would inject it; pytest.ini tells pytest-ansible
to use this path (`--ansible-unit-inject-only`) instead of building a tree of symlinks in the checkout.
"""

from __future__ import annotations

import os

from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".collections")
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", COLLECTIONS)
_AnsibleCollectionFinder(paths=[COLLECTIONS])._install()
