"""The tamper-evident audit log: every change and every personal-data read, hash-chained."""
