"""Containers for ipledger (issue 17): images built on this machine from local material.

``python -m network.containers build`` builds them all (network/containers/images.py);
docs/containers.md says what is built, how it is cached and what is not done yet.
"""
