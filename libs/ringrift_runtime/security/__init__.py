"""The cluster's security: identities in certificates (pki), transport credentials
(tls), who a caller is (identity), and the one authorization interceptor (authz)."""
