"""Containers for ipledger: images built on this machine from local material.

``python -m ipledger.network.org.containers build`` builds them all (network/org/containers/images.py);
docs/containers.md says what is built, how it is cached and what is not done yet.
"""
