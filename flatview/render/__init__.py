"""Renderers: format analysis results and models as text, tables, JSON."""
