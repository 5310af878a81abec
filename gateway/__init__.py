"""The ipledger gateway: the Flask REST API (``ipledger.gateway.app``) and the Fabric Gateway client (``ipledger.gateway.client``).

See gateway/README.md. Importing this package imports nothing else.
"""
