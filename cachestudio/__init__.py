"""Cache Studio: cache-aside, write-through and write-behind, running for real."""

__version__ = "0.1.0"
