"""IVR trees, time conditions and the open/closed state of the switchboard."""
