"""Console entry point of the API replay server (``airbricks-replay``); the server is
:mod:`airbricks.local.replay`."""
