"""Models (see the app's services for behaviour)."""
