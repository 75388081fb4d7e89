"""Routing policies of the RPN relay: where the routing key of a request is read.

A third party adds a policy without forking by dropping a module like this one, declaring a
``rpn.routing.RoutingPolicy`` (or any ``IPlugin`` providing
``rpn.interfaces.IRoutingPolicy``), into a ``twisted/plugins/`` directory on the Python path.
"""

from rpn.routing import HttpHeaderExtractor, RoutingPolicy, SoapHeaderExtractor, UrlPathExtractor

soap_header = RoutingPolicy(
    "soap-header",
    "The routing block of the SOAP header (options: paths, max_header_bytes, max_depth).",
    SoapHeaderExtractor.from_options,
)
http_header = RoutingPolicy(
    "http-header",
    "HTTP headers x-roc-service, x-roc-version, x-roc-amc, ... (options: prefix).",
    HttpHeaderExtractor.from_options,
)
url_path = RoutingPolicy(
    "url-path",
    "The path /roc/<version>/<service>/<amc>/<convention>/<criterion>, sender and exchange "
    "from x-roc-* headers (options: prefix, header_prefix).",
    UrlPathExtractor.from_options,
)
