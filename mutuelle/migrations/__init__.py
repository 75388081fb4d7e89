"""The sandboxes database schema: ordered SQL files ``NNNN_name.sql`` (``mutuelle.migrate``)."""
