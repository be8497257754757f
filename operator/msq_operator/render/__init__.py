"""Pure functions that turn custom resources into the objects the operator wants to exist.

No I/O here: everything is a function of its arguments, unit-tested without a cluster.
"""
