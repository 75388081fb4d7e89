"""Mutuelle ANS: a simulated AMC (ROC V1 and V2) with fictitious data, and a demo annuaire.

Pure core: ``model`` (AMCs, contracts, guarantees, beneficiaries), ``idb`` (rules),
``catalogue`` (named business cases), ``annuaire`` (ANN), ``codec`` and ``soap`` (XML in and
out), ``simulator`` (one exchange, bytes to bytes). Data: ``generate`` writes the fictitious
TOML files that ``datafiles`` reads. Twisted glue: ``server``, ``service``, ``config``, ``tap``.
"""
