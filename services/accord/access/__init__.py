"""Access: the partner registry's principals, their Kafka ACLs, and the commands that
manage them (`accord partner`, `accord security`). Run by the administrator."""
