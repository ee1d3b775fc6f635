"""The faust-free pipeline core, below both the worker and governance.

intake (checking partner records), identity (who a record is about), cases (joining a
person's records), decision (asking the policy, minimising, auditing, releasing), the
stages over a batch, which cases a policy change affects, and share-topic retention.
"""
