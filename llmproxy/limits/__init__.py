"""Per-key limits in Redis (RPM, TPM, budget) and the admission of a request against them."""
