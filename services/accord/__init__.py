"""Accord: a data-sharing hub that enforces data-sharing agreements on every record."""
