"""The agents' browser softphone and its aiortc gateway."""
