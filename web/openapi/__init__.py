"""The OpenAPI 3.1 document at /openapi.json, assembled from the routes' own declarations (`operation`)."""
