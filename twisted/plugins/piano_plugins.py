"""Twisted plugin dropin: ``twistd rpn``, ``twistd mutuelle``, ``twistd indicators``. Thin."""

from twisted.application.service import ServiceMaker

rpn = ServiceMaker(
    "PiANO RPN ROC",
    "rpn.tap",
    "National ROC reverse proxy between establishments and AMCs.",
    "rpn",
)
mutuelle = ServiceMaker(
    "PiANO Mutuelle ANS",
    "mutuelle.tap",
    "Simulated AMC (ROC V1 and V2) with fictitious data, and a demo annuaire.",
    "mutuelle",
)
indicators = ServiceMaker(
    "PiANO Indicators",
    "indicators.tap",
    "Per-establishment ROC indicators read from Prometheus, one page per establishment.",
    "indicators",
)
