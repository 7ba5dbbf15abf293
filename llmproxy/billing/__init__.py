"""Billing: cost from usage and prices, the ledger rows, and usage reports."""
