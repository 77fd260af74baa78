"""The seedsvc sidecar: HTTP serving, metrics and the command line around the :mod:`seedsvc` library.

Dependencies point one way: ``sidecar`` imports ``seedsvc``, never the reverse.
"""
