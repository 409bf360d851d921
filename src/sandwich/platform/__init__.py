"""Plumbing every service shares, written once."""
