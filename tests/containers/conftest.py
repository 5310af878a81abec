"""Tests against a real container engine (issue 17): not collected unless asked for.

``pytest`` with the project's ``testpaths = ["tests"]`` would otherwise collect this folder in
CI, which has no Docker engine yet. Run them with a daemon up (docs/containers.md):

    IPLEDGER_CONTAINER_TESTS=1 .venv/bin/python -m pytest tests/containers

They build the images first (``network.containers.images.build_all``; cached tags are not
rebuilt), so the first run takes about two minutes on 2 cores.
"""
import os

if os.environ.get("IPLEDGER_CONTAINER_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]
