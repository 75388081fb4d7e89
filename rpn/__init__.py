"""RPN ROC: the national TLS reverse proxy between establishments and AMCs."""
