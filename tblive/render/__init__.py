"""Rendering: verdicts and statistics as text, JSON, HTML with plots, and comparisons."""
