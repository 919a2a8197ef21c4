"""FastAPI + SQLModel admin API on the PBX store."""
