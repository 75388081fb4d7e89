"""What both ends of the ROC wire share: the project's model of ROC messages.

The real ROC schemas are distributed to members only; everything here is the PiANO
project's own model (see docs/roc-model.md), written so the real names can be configured in.
"""
