"""The operator's dashboard: server-rendered pages behind an admin sign-in."""
