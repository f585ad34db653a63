"""Pure functions on small hand-made inputs: no flow, no server."""
