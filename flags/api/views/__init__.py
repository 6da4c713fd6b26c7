"""The flags app's routes, one module per subject (``flags``, ``evaluate``,
``ofrep``); ``flags/api/urls.py`` imports each view from its module."""
