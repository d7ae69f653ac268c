"""homekeep: one tool for a home server's file and media chores."""

__version__ = "0.1.0"
