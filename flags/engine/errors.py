class EngineError(ValueError):
    """A flag, strategy, constraint, variant or segment that is not well formed."""
