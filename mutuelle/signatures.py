"""Mutuelle ANS's check of request signatures: the policy, and the violation a defect is.

The checking itself is ``roc.signature`` (shared with publishers' tools); here a defect
becomes a conformance ``Violation`` with its French reason, and the policy (per configuration,
overridden per sandbox through the admin API) says what follows:

- ``require``: a request whose signature is missing or invalid gets the fault
  ``MUT-400-SIGNATURE`` naming the rule, and is not processed;
- ``report``: the request is served and the violation recorded in the sandbox's journal and
  conformance report;
- ``off``: signatures are not looked at.

Pure: the parsed request, the trusted authorities and the time in, a violation or None out.
"""

from __future__ import annotations

import datetime
from enum import StrEnum

from lxml import etree

from mutuelle.sandbox import Violation
from mutuelle.wording import signature_reason
from roc.model import RoutingKey
from roc.signature import Defect, SignatureInvalid, Trust, verify

#: The field a signature violation names in reports.
SIGNATURE_FIELD = "Header/Security/Signature"


class SignaturePolicy(StrEnum):
    """What Mutuelle ANS does with a request's signature (configuration, admin API)."""

    REQUIRE = "require"
    REPORT = "report"
    OFF = "off"


def violation_of(defect: Defect) -> Violation:
    """The conformance violation *defect* is (rule = the defect's stable code)."""
    return Violation(SIGNATURE_FIELD, defect.value, signature_reason(defect))


def signature_violation(
    root: etree._Element, routing: RoutingKey, trust: Trust, now: datetime.datetime
) -> Violation | None:
    """The violation the signature of the request *root* commits, None when it is valid."""
    senders = (routing.sender_finess_legal, routing.sender_finess_site)
    try:
        verify(root, trust, now, senders)
    except SignatureInvalid as exc:
        return violation_of(exc.defect)
    return None
