"""Bundled example instances, device profiles and the instance generator."""
