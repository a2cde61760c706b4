"""Counterfactual memorisation (Feldman & Zhang) against D*: ``memorisation``."""
