"""SOAP Fault documents for the relay's own errors (SOAP 1.1 and 1.2)."""

from __future__ import annotations

from xml.sax.saxutils import escape

from roc.model import RPN_FAULT_NS, SoapVersion
from roc.soapfault import fault_envelope
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
    text = spec.message + (f" ({detail})" if detail else "")
    rpn_detail = (
        f'<e:ErreurRPN xmlns:e="{RPN_FAULT_NS}">'
        f"<e:Code>{escape(spec.code)}</e:Code>"
        f"<e:Message>{escape(text)}</e:Message>"
        f"<e:IdentifiantEchange>{escape(exchange_id)}</e:IdentifiantEchange>"
        f"<e:Rejouable>{'true' if spec.retryable else 'false'}</e:Rejouable>"
        "</e:ErreurRPN>"
    )
    return fault_envelope(version, spec.fault_role == "Client", text, rpn_detail)
