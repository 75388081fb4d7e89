"""SOAP Fault documents for the relay's own errors (SOAP 1.1 and 1.2)."""

from __future__ import annotations

from xml.sax.saxutils import escape

from roc.model import (
    RPN_FAULT_NS,
    SOAP11_NS,
    SOAP12_NS,
    SoapVersion,
)
from rpn.errors import RpnError


def fault_document(
    error: RpnError,
    detail: str = "",
    exchange_id: str = "",
    version: SoapVersion = SoapVersion.SOAP11,
) -> bytes:
    """A complete SOAP envelope carrying *error* as a Fault.

    *detail* and *exchange_id* are escaped; neither may hold personal data.
    """
    spec = error.spec
    text = escape(spec.message + (f" ({detail})" if detail else ""))
    rpn_detail = (
        f'<e:ErreurRPN xmlns:e="{RPN_FAULT_NS}">'
        f"<e:Code>{escape(spec.code)}</e:Code>"
        f"<e:Message>{text}</e:Message>"
        f"<e:IdentifiantEchange>{escape(exchange_id)}</e:IdentifiantEchange>"
        f"<e:Rejouable>{'true' if spec.retryable else 'false'}</e:Rejouable>"
        "</e:ErreurRPN>"
    )
    if version is SoapVersion.SOAP12:
        role = "soap:Sender" if spec.fault_role == "Client" else "soap:Receiver"
        body = (
            f"<soap:Fault><soap:Code><soap:Value>{role}</soap:Value></soap:Code>"
            f'<soap:Reason><soap:Text xml:lang="fr">{text}</soap:Text></soap:Reason>'
            f"<soap:Detail>{rpn_detail}</soap:Detail></soap:Fault>"
        )
        ns = SOAP12_NS
    else:
        body = (
            f"<soap:Fault><faultcode>soap:{spec.fault_role}</faultcode>"
            f"<faultstring>{text}</faultstring>"
            f"<detail>{rpn_detail}</detail></soap:Fault>"
        )
        ns = SOAP11_NS
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{ns}"><soap:Body>{body}</soap:Body></soap:Envelope>'
    ).encode()
