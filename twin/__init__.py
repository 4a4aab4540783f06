"""City twin core: the city model, its config, the store and the CLI."""

__version__ = "0.1.0"
