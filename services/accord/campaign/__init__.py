"""Campaigns that prove the hub's promises end to end and print figures.

Nothing else in the package imports this one; it may import the demo's generators and the
stack's process helpers.
"""

# The faults `accord campaign faults` inflicts besides the worker's SIGKILLs, in order.
FAULTS = ("broker", "opa", "registry", "lag")
