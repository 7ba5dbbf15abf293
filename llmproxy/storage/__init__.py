"""Storage: the engine and sessions, typed models, the money type, pagination and migrations."""
