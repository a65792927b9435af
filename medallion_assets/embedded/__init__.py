"""The embedded default's bootstrap: the local Spark session and its class archive. Never runs in a task."""
