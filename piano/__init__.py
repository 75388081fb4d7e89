"""The service kit the three PiANO services share: configuration, taps, TLS, logs, version,
the reactor type, the plain-HTTP site pieces and the test clock."""
