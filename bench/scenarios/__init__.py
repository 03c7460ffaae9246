"""One module per scenario; each exposes ``run(options) -> Measured``."""
