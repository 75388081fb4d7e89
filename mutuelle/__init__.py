"""Mutuelle ANS: a simulated AMC (ROC V1 and V2) with fictitious data, and a demo annuaire."""
