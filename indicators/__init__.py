"""PiANO Indicators: per-establishment ROC indicators read from Prometheus, one page each."""
