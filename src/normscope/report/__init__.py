"""Summaries and diagrams: data first, rendering second."""
