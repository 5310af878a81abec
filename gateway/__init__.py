"""The ipledger gateway: the Flask REST API (``gateway.app``) and the Fabric Gateway client (``gateway.fabric``).

See gateway/README.md. Importing this package imports nothing else.
"""
