"""Providers: one small interface per capability; offline implementations ship with the product."""
