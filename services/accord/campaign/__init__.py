"""Campaigns that prove the hub's promises end to end and print figures.

Nothing else in the package imports this one; it may import the demo's generators and the
stack's process helpers.
"""
