"""The training package's own error type, in a module of its own so that every module can raise it
without importing the config machinery (no import circle)."""


class ConfigError(ValueError):
    """A config value out of its range or of the wrong type; the message names the key."""
