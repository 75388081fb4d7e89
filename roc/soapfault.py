"""The SOAP Fault envelope both ends answer with (SOAP 1.1 and 1.2), built once.

The relay (``rpn.faults``) and Mutuelle ANS (``mutuelle.faults``) each put their own detail
element in it (``ErreurRPN``, ``ErreurSimulateur``); the envelope, the fault role and the French
reason are written here.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from roc.model import SOAP11_NS, SOAP12_NS, SoapVersion

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def fault_envelope(
    version: SoapVersion, sender_at_fault: bool, text: str, detail_xml: str
) -> bytes:
    """A complete SOAP envelope holding one Fault, in UTF-8.

    *sender_at_fault*: the client must change its request (SOAP 1.1 ``soap:Client``, 1.2
    ``soap:Sender``), else the server failed (``soap:Server`` / ``soap:Receiver``). *text* is
    the French reason (escaped here); *detail_xml* the detail's content, already XML.
    """
    reason = escape(text)
    if version is SoapVersion.SOAP12:
        role = "soap:Sender" if sender_at_fault else "soap:Receiver"
        body = (
            f"<soap:Fault><soap:Code><soap:Value>{role}</soap:Value></soap:Code>"
            f'<soap:Reason><soap:Text xml:lang="fr">{reason}</soap:Text></soap:Reason>'
            f"<soap:Detail>{detail_xml}</soap:Detail></soap:Fault>"
        )
        ns = SOAP12_NS
    else:
        role = "soap:Client" if sender_at_fault else "soap:Server"
        body = (
            f"<soap:Fault><faultcode>{role}</faultcode>"
            f"<faultstring>{reason}</faultstring>"
            f"<detail>{detail_xml}</detail></soap:Fault>"
        )
        ns = SOAP11_NS
    return (
        f'{XML_DECLARATION}<soap:Envelope xmlns:soap="{ns}"><soap:Body>{body}</soap:Body>'
        "</soap:Envelope>"
    ).encode()
