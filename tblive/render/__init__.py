"""Rendering: verdicts and statistics as text, JSON and side-by-side comparisons."""
