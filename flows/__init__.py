"""Prefect flows over the feedletter library: orchestration only, no pipeline logic here."""
