"""Forecourt: one typed GraphQL API for car dealerships."""

__version__ = "0.1.0"
