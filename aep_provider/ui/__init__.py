"""
The deliveries page: an Airflow UI plugin (a FastAPI app mounted under ``/aep``, shown through
``external_views``) reading the history of :mod:`aep_provider.history`. Runs in the API server only.
"""
