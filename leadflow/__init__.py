"""leadflow: an event-driven lead-to-conversion pipeline (core: CLI, config, broker and warehouse clients)."""
__version__ = "0.1.0"
