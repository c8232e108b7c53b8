"""Console pages, one module per area; each module's ``router`` is mounted by ``console.app``."""
