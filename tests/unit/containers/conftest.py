"""Fixtures of the container runtime's unit tests (no engine)."""
from __future__ import annotations

import pytest

from ipledger.network import consortium
from ipledger.network.layout import Layout
from ipledger.network.org import generate


@pytest.fixture
def net(tmp_path):
    """The shipped consortium with every organisation's identities and node files, in a scratch state directory."""
    c, lay = consortium.load(base_port=21000), Layout(tmp_path / "state")
    for org in c.all_orgs:
        generate.init_org(c, lay, org, log=lambda *_: None)
    generate.generate_nodes(c, lay)
    return c, lay
