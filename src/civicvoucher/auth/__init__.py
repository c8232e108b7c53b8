"""Who may do what: users, tokens, roles and the one place that decides organisation scope."""
