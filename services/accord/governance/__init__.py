"""Governance tools for information-governance officers: agreement validation, the policy
gate, the audit index and its queries, and replay of traffic through candidate policies."""
