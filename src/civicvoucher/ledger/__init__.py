"""Double-entry ledger: accounts, transfers, posting, verify."""
