"""Video generator backends behind the :class:`generator.base.VideoBackend` protocol."""
