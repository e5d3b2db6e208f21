"""Airflow Assets for AEP datasets and inlets (the ``aep`` URI scheme)."""
