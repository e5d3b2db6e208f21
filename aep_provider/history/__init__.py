"""
The deliveries history: what each run of a KafkaToAEPOperator task moved, kept in the provider's
own tables (filled on the scheduler side when a DAG run ends, from the run summary the task left
as XCom), and the questions the deliveries page asks of it.

Server side only (scheduler, API server): task code never writes the metadata database.
"""
