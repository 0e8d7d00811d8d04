"""Onramp: self-hosted batch audience data onboarding."""

__version__ = "0.1.0"
