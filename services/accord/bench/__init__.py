"""`accord bench`: the governed pipeline measured side by side with raw Kafka pass-through."""
